/**
 * Single stages and layers, each with a fake `next` and, where time matters, a fake clock: what one
 * concern does, without sockets.
 */
import test from 'ava';
import pino from 'pino';
import { Attempt } from '../src/core/attempt.ts';
import { MeshletError } from '../src/core/errors.ts';
import { Exchange } from '../src/core/exchange.ts';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { compose, type Handler, type Send } from '../src/core/stage.ts';
import { parseConfig } from '../src/config/load.ts';
import { Drain } from '../src/health/drain.ts';
import { ConcurrencyLimit } from '../src/resilience/concurrency.ts';
import { deadline } from '../src/resilience/deadline.ts';
import { retry } from '../src/resilience/retry.ts';
import { Metrics } from '../src/telemetry/metrics.ts';
import { pickEndpoint } from '../src/upstream/balancer.ts';
import { Upstream } from '../src/upstream/upstream.ts';
import { FakeClock } from './helpers/fake-clock.ts';

/** An attempt that never touches a socket: `send` resolves with itself at once. */
class StubAttempt extends Attempt {
  override send(): Promise<Attempt> {
    return Promise.resolve(this);
  }
  override relay(): Promise<void> {
    return Promise.resolve();
  }
  override discard(): void {}
  override abort(): void {}
  override again(): Attempt {
    return new StubAttempt(this.ex, this.resendCount + 1);
  }
}

/** Just enough of an exchange for the layers under test: a clock, a deadline slot, cancellation. */
function stubExchange(clock: FakeClock, target: Upstream | null = null, timeoutMs = -1): Exchange & { cancelledWith: Error[] } {
  const cancelledWith: Error[] = [];
  return {
    clock,
    head: { maxRetries: -1, timeoutMs },
    deadline: null,
    target,
    cancelledWith,
    cancel(reason: Error) {
      cancelledWith.push(reason);
    },
  } as unknown as Exchange & { cancelledWith: Error[] };
}

function upstreamWith(urls: string[], defaults: Record<string, unknown> = {}, clock: FakeClock = new FakeClock()): Upstream {
  const loaded = parseConfig({ service: { name: 'layers' }, defaults });
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
  const metrics = new Metrics({ serviceName: 'layers', processMetrics: false });
  const services = { metrics, clock, logger: pino({ level: 'silent' }) };
  return new Upstream('researcher', loaded.config.defaults, urls, services, 'outbound', () => ({ send: (a) => a.send(), breaker: null }));
}

const never: Send = () => new Promise(() => {});

test('deadline: the exchange is cancelled with upstream_timeout when the total passes, not before', (t) => {
  const clock = new FakeClock();
  const ex = stubExchange(clock);
  const send = deadline(5_000)(never);
  void send(new StubAttempt(ex, 0));
  clock.advance(4_999);
  t.deepEqual(ex.cancelledWith, []);
  clock.advance(1);
  t.is(ex.cancelledWith.length, 1);
  t.is((ex.cancelledWith[0] as MeshletError).code, 'upstream_timeout');
});

test('deadline: one per exchange, never re-armed by a retry', (t) => {
  const clock = new FakeClock();
  const ex = stubExchange(clock);
  const send = deadline(5_000)(never);
  void send(new StubAttempt(ex, 0));
  clock.advance(3_000);
  void send(new StubAttempt(ex, 1));
  t.is(clock.pending, 1);
  clock.advance(2_000);
  t.is(ex.cancelledWith.length, 1, 'the retry did not get a fresh 5 s');
});

test('deadline: off (0) arms nothing, unless the request asks for one (x-meshlet-timeout)', (t) => {
  const clock = new FakeClock();
  const send = deadline(0)(never);
  void send(new StubAttempt(stubExchange(clock), 0));
  t.is(clock.pending, 0);
  const asking = stubExchange(clock, null, 300);
  void send(new StubAttempt(asking, 0));
  clock.advance(300);
  t.is((asking.cancelledWith[0] as MeshletError).code, 'upstream_timeout');
});

test('pick endpoint: round-robin over the endpoints; none at all is a refusal with an ignored outcome', async (t) => {
  const clock = new FakeClock();
  const upstream = upstreamWith(['http://127.0.0.1:1', 'http://127.0.0.1:2'], { loadBalancer: { policy: 'round-robin' } });
  t.teardown(() => upstream.close());
  const send = pickEndpoint(upstream)((a) => Promise.resolve(a));
  const picked = [];
  for (let i = 0; i < 3; i++) picked.push((await send(new StubAttempt(stubExchange(clock, upstream), 0))).endpoint!.url);
  t.deepEqual(picked, ['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:1']);

  const empty = upstreamWith([]);
  const outcomes: string[] = [];
  empty.onOutcome((a) => outcomes.push(`${a.outcome}:${a.label}`));
  const attempt = new StubAttempt(stubExchange(clock, empty), 0);
  const error = await t.throwsAsync(pickEndpoint(empty)(never)(attempt));
  t.is((error as MeshletError).code, 'no_healthy_endpoints');
  t.deepEqual(outcomes, ['ignored:rejected']);
});

test('pick endpoint: a retry avoids the endpoint of the previous attempt when another is in service', async (t) => {
  const clock = new FakeClock();
  for (const policy of ['p2c-ewma', 'round-robin']) {
    const upstream = upstreamWith(['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3'], { loadBalancer: { policy } });
    t.teardown(() => upstream.close());
    const send = pickEndpoint(upstream)((a) => Promise.resolve(a));
    const [first, second] = upstream.endpoints;
    let firstTriesOnPrevious = 0;
    for (let i = 0; i < 60; i++) {
      const previous = upstream.endpoints[i % 3]!;
      const ex = Object.assign(stubExchange(clock, upstream), { endpoint: previous });
      const retry = await send(new StubAttempt(ex, 1));
      t.not(retry.endpoint, previous, `${policy}: retry ${i} went back to ${previous.url}`);
      if ((await send(new StubAttempt(ex, 0))).endpoint === previous) firstTriesOnPrevious++;
    }
    t.true(firstTriesOnPrevious > 0, `${policy}: a first try is free to use any endpoint`);
    // With the others ejected, the only endpoint in service is used again.
    first!.health.ejected = second!.health.ejected = true;
    upstream.ejectionsChanged();
    const third = upstream.endpoints[2]!;
    const ex = Object.assign(stubExchange(clock, upstream), { endpoint: third });
    t.is((await send(new StubAttempt(ex, 1))).endpoint, third);
  }
});

test('pick endpoint: one endpoint is picked at once, by every policy, retries included', async (t) => {
  const clock = new FakeClock();
  for (const policy of ['p2c-ewma', 'round-robin']) {
    const upstream = upstreamWith(['http://127.0.0.1:1'], { loadBalancer: { policy } });
    t.teardown(() => upstream.close());
    const only = upstream.endpoints[0]!;
    const send = pickEndpoint(upstream)((a) => Promise.resolve(a));
    const ex = Object.assign(stubExchange(clock, upstream), { endpoint: only });
    t.is((await send(new StubAttempt(ex, 0))).endpoint, only);
    t.is((await send(new StubAttempt(ex, 1))).endpoint, only);
  }
});

test('an endpoint set replaced while an attempt is in flight: the attempt keeps its endpoint, which closes once it is done', async (t) => {
  const upstream = upstreamWith(['http://127.0.0.1:1']);
  t.teardown(() => upstream.close());
  const old = upstream.endpoints[0]!;
  old.inFlight++;
  upstream.setEndpoints(['http://127.0.0.1:2', 'http://127.0.0.1:1']);
  t.is(upstream.endpoints[1], old, 'an endpoint that stays keeps its pool');
  upstream.setEndpoints(['http://127.0.0.1:2']);
  t.deepEqual(upstream.endpoints.map((e) => e.url), ['http://127.0.0.1:2']);
  t.false(old.pool.closed, 'still serving its request in flight');
  old.released();
  await new Promise((resolve) => setImmediate(resolve));
  t.true(old.pool.closed);
});

const answered: Handler = () => Promise.resolve();

test('drain stage: requests pass until drain begins, then get 503 draining', async (t) => {
  const drain = new Drain();
  const handle = drain.stage(answered);
  await t.notThrowsAsync(handle({} as Exchange));
  drain.begin();
  const error = await t.throwsAsync(handle({} as Exchange));
  t.is((error as MeshletError).code, 'draining');
});

/** As the listener runs the stages: the exchange's slot is given back when it finishes, whatever the outcome. */
function finishing(handler: Handler): Handler {
  return (ex) => handler(ex).finally(() => ex.slot?.release(ex));
}

test('concurrency stage: over the limit is 503 overloaded; every slot comes back, after failures too', async (t) => {
  const limit = new ConcurrencyLimit(2);
  const releases: (() => void)[] = [];
  const held: Handler = () => new Promise((resolve, reject) => releases.push(() => (releases.length % 2 ? resolve() : reject(new Error('x')))));
  const handle = finishing(compose([limit.stage], held));
  const first = handle({} as Exchange).catch(() => {});
  const second = handle({} as Exchange).catch(() => {});
  t.is(limit.inFlight, 2);
  const third = await t.throwsAsync(handle({} as Exchange));
  t.is((third as MeshletError).code, 'overloaded');
  t.is((third as MeshletError).retryAfter, 1);
  for (const release of releases) release();
  await Promise.all([first, second]);
  t.is(limit.inFlight, 0);
});

test('concurrency stage: a source over its share is refused only once the listener is busy', async (t) => {
  const limit = new ConcurrencyLimit(8, 0.25); // 2 per source once 4 are in flight
  const releases: (() => void)[] = [];
  const held: Handler = () => new Promise<void>((resolve) => releases.push(resolve));
  const handle = finishing(compose([limit.stage], held));
  const from = (source: string) => ({ head: { source } }) as Exchange;
  const admitted = [0, 1, 2, 3].map(() => handle(from('gateway')));
  t.is(limit.inFlight, 4, 'alone, one source may take half the slots');
  const refused = await t.throwsAsync(handle(from('gateway')));
  t.is((refused as MeshletError).code, 'source_limited');
  const other = handle(from('another'));
  t.is(limit.inFlight, 5, 'another source still gets in');
  for (const release of releases) release();
  await Promise.all([...admitted, other]);
  t.is(limit.inFlight, 0);
});

test('concurrency stage: a source whose requests all ended keeps its count (at 0) and its share; idle sources are swept past max + 1024', async (t) => {
  const limit = new ConcurrencyLimit(8, 0.25);
  const releases: (() => void)[] = [];
  const held: Handler = () => new Promise<void>((resolve) => releases.push(resolve));
  const handle = finishing(compose([limit.stage], held));
  const from = (source: string) => ({ head: { source } }) as Exchange;
  // One source comes and goes: its entry stays, and its share is counted from 0 again.
  for (let i = 0; i < 3; i++) {
    const one = handle(from('gateway'));
    releases.pop()!();
    await one;
  }
  t.is(limit.sources, 1);
  const busy = [0, 1, 2, 3].map(() => handle(from('gateway')));
  t.is((await t.throwsAsync(handle(from('gateway'))) as MeshletError).code, 'source_limited', 'held to its share, not more or less');
  for (const release of releases.splice(0)) release();
  await Promise.all(busy);
  // Thousands of sources, one request each: the map is swept of idle ones and stays bounded.
  for (let i = 0; i < 3000; i++) {
    const one = handle(from(`10.0.${i >> 8}.${i & 255}`));
    releases.pop()!();
    await one;
  }
  t.true(limit.sources <= 8 + 1024, `${limit.sources} sources remembered`);
  t.is(limit.inFlight, 0);
});

test('exchange cancellation: one reason, reaching the attempt and an AbortSignal made before or after', (t) => {
  const head = { headers: [], host: 'a', hostCount: 1, requestId: 'r', transferEncoding: undefined, contentLength: undefined, source: 's', maxRetries: -1, timeoutMs: -1 };
  const make = () => new Exchange({ url: '/' } as IncomingMessage, null, head, { clock: new FakeClock() }, 'request', {} as Duplex);
  const early = make();
  const signal = early.signal;
  t.false(signal.aborted);
  const aborted: unknown[] = [];
  early.attempt = { abort: (reason: Error) => aborted.push(reason) } as unknown as Attempt;
  const first = new Error('deadline');
  early.cancel(first);
  early.cancel(new Error('client gone'));
  t.true(signal.aborted);
  t.is(signal.reason, first);
  t.deepEqual(aborted, [first], 'the attempt is stopped once, with the first reason');
  const late = make();
  late.cancel(first);
  t.true(late.signal.aborted, 'a signal asked for after the cancel is already aborted');
  t.is(late.signal.reason, first);
});

test('retry layer: an attempt whose response has begun is never retried, even when its failure is retryable', async (t) => {
  const loaded = parseConfig({ service: { name: 'layers' } });
  if (!loaded.ok) return t.fail();
  const metrics = new Metrics({ serviceName: 'layers', processMetrics: false });
  const layer = retry({ upstream: 'researcher', settings: loaded.config.defaults.retries, breaker: null, clock: new FakeClock(), metrics: metrics.resilience });
  const sent: number[] = [];
  // As a head relayed the moment it arrived, whose stream then broke before the layers looked at it.
  const brokenAfterHead: Send = (attempt) => {
    sent.push(attempt.resendCount);
    attempt.status = 200;
    attempt.retryable = true;
    attempt.label = 'reset';
    attempt.ex.status = 200;
    return Promise.resolve(attempt);
  };
  const ex = { head: { maxRetries: -1, headers: [], timeoutMs: -1 }, req: { method: 'GET' }, bodyReplay: null, hasBody: false, cancelled: null, clientGone: false, status: 0 } as unknown as Exchange;
  const answered = await layer(brokenAfterHead)(new StubAttempt(ex, 0));
  t.is(answered.resendCount, 0);
  t.deepEqual(sent, [0]);
});
