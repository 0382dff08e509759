/**
 * Retries against a chaos upstream: what is retried (and what never is), body replay, Retry-After,
 * the per-try timeout, and the retry budget's bound under a failure storm.
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { request } from 'undici';
import { BodyReplay } from '../src/resilience/body-replay.ts';
import { startChaos, type ChaosUpstream } from './helpers/chaos.ts';
import { closedPort } from './helpers/servers.ts';
import { startSidecar, type Fixture } from './helpers/with-sidecar.ts';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A sidecar whose upstream `chaos` reaches the chaos server, with `policy` laid over its defaults. */
async function sidecarFor(t: Parameters<typeof startSidecar>[0], chaos: ChaosUpstream, policy: Record<string, unknown> = {}): Promise<Fixture> {
  return startSidecar(t, {
    config: () => ({
      upstreams: {
        chaos: {
          endpoints: [chaos.url],
          retries: { backoff: { base: '1ms', max: '5ms' } },
          circuitBreaker: { enabled: false },
          ...policy,
        },
      },
    }),
  });
}

function call(fixture: Fixture, path: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}) {
  return request(`${fixture.outbound}${path}`, { method: options.method ?? 'GET', headers: { host: 'chaos', ...options.headers }, body: options.body });
}

async function metric(fixture: Fixture, pattern: RegExp): Promise<number> {
  const text = await fixture.sidecar.metrics.registry.metrics();
  const match = pattern.exec(text);
  return match === null ? 0 : Number(match[1]);
}

test('a GET is retried after a reset, and the retry is counted by reason', async (t) => {
  const chaos = await startChaos(t);
  chaos.queue.push({ kind: 'reset-before-head' });
  const fixture = await sidecarFor(t, chaos);
  const res = await call(fixture, '/again');
  t.is(res.statusCode, 200);
  t.is(await res.body.text(), 'ok');
  t.is(chaos.received.length, 2);
  t.is(await metric(fixture, /meshlet_retries_total\{upstream="chaos",reason="reset"[^}]*\} (\d+)/), 1);
  t.like(await fixture.logs.next((l) => l.type === 'access' && l.path === '/again'), { status: 200, attempts: 2, outcome: 'success' });
});

test('a POST is not retried after a reset unless it carries Idempotency-Key', async (t) => {
  const chaos = await startChaos(t);
  const fixture = await sidecarFor(t, chaos);
  chaos.queue.push({ kind: 'reset-before-head' });
  const plain = await call(fixture, '/charge', { method: 'POST', body: Buffer.from('{"amount":1}') });
  t.is(plain.statusCode, 502);
  t.is(plain.headers['x-meshlet-error'], 'upstream_reset');
  await plain.body.text();
  t.is(chaos.received.length, 1);
  chaos.queue.push({ kind: 'reset-before-head' });
  const keyed = await call(fixture, '/charge', { method: 'POST', body: Buffer.from('{"amount":1}'), headers: { 'idempotency-key': 'k-1' } });
  t.is(keyed.statusCode, 200);
  await keyed.body.text();
  t.is(chaos.received.length, 3);
  t.is(chaos.received[2]?.headers['idempotency-key'], 'k-1');
});

test('a 503 is retried for a GET, not for a POST; a Retry-After over maxRetryAfter is not waited for', async (t) => {
  const chaos = await startChaos(t);
  const fixture = await sidecarFor(t, chaos);
  chaos.queue.push({ kind: 'status', status: 503 });
  t.is((await call(fixture, '/get')).statusCode, 200);
  chaos.queue.push({ kind: 'status', status: 503 });
  const post = await call(fixture, '/post', { method: 'POST', body: Buffer.from('x') });
  t.is(post.statusCode, 503);
  t.is(await post.body.text(), 'status 503', "the upstream's own answer is relayed");
  chaos.queue.push({ kind: 'status', status: 503, headers: { 'retry-after': '60' } });
  const later = await call(fixture, '/later');
  t.is(later.statusCode, 503);
  t.is(later.headers['retry-after'], '60');
  chaos.queue.push({ kind: 'status', status: 503, headers: { 'retry-after': '0' } });
  t.is((await call(fixture, '/now')).statusCode, 200);
  t.deepEqual(chaos.received.map((r) => r.url), ['/get', '/get', '/post', '/later', '/now', '/now']);
});

test('a connect failure is retried for any method, on the next endpoint', async (t) => {
  const chaos = await startChaos(t);
  const port = await closedPort();
  const fixture = await startSidecar(t, {
    // Round-robin: the first attempt goes to the closed port, the retry elsewhere.
    config: () => ({
      upstreams: { chaos: { endpoints: [`http://127.0.0.1:${port}`, chaos.url], loadBalancer: { policy: 'round-robin' }, circuitBreaker: { enabled: false } } },
    }),
  });
  const body = randomBytes(256 * 1024); // larger than maxBodyBytes: nothing was read, so it can go again
  const res = await call(fixture, '/post', { method: 'POST', body });
  t.is(res.statusCode, 200);
  t.is(chaos.received[0]?.bodySha256, sha256(body));
  t.is(await metric(fixture, /meshlet_retries_total\{upstream="chaos",reason="connect-failure"[^}]*\} (\d+)/), 1);
});

test('no retry once response bytes reached the client: the connection is cut', async (t) => {
  const chaos = await startChaos(t, { kind: 'reset-after-head' });
  const fixture = await sidecarFor(t, chaos);
  const res = await call(fixture, '/stream');
  t.is(res.statusCode, 200);
  await t.throwsAsync(res.body.text());
  t.is(chaos.received.length, 1);
});

test('a response that breaks in the packet of its head is cut, not retried: the head was relayed as it came', async (t) => {
  const chaos = await startChaos(t, { kind: 'malformed-with-head' });
  const fixture = await sidecarFor(t, chaos);
  const res = await call(fixture, '/broken');
  t.is(res.statusCode, 200);
  await t.throwsAsync(res.body.text());
  const line = await fixture.logs.next((l) => l.type === 'access' && l.path === '/broken');
  t.like(line, { status: 200, attempts: 1, outcome: 'reset', error: 'upstream_reset' });
  t.is(chaos.received.length, 1);
});

test('a 32 KiB keyed POST is retried with the identical body; a 1 MiB one is forwarded intact but not retried', async (t) => {
  const chaos = await startChaos(t);
  const fixture = await sidecarFor(t, chaos);
  const small = randomBytes(32 * 1024);
  chaos.queue.push({ kind: 'status', status: 503 });
  const retried = await call(fixture, '/small', { method: 'POST', body: small, headers: { 'idempotency-key': 'small' } });
  t.is(retried.statusCode, 200);
  t.deepEqual(chaos.received.map((r) => [r.url, r.bodySha256]), [['/small', sha256(small)], ['/small', sha256(small)]]);
  const large = randomBytes(1024 * 1024);
  chaos.queue.push({ kind: 'status', status: 503 });
  const forwarded = await call(fixture, '/large', { method: 'POST', body: large, headers: { 'idempotency-key': 'large' } });
  t.is(forwarded.statusCode, 503);
  t.is(chaos.received.length, 3);
  t.is(chaos.received[2]?.bodySha256, sha256(large));
  t.is(chaos.received[2]?.bodyBytes, large.length);
});

test('a chunked keyed body is replayed whole after a reset', async (t) => {
  const chaos = await startChaos(t);
  const fixture = await sidecarFor(t, chaos);
  const parts = [randomBytes(1000), randomBytes(2000), randomBytes(3000)];
  async function* chunks() {
    for (const part of parts) yield part;
  }
  chaos.queue.push({ kind: 'reset-before-head' });
  const res = await request(`${fixture.outbound}/chunked`, { method: 'PUT', headers: { host: 'chaos' }, body: Readable.from(chunks()) });
  t.is(res.statusCode, 200);
  const whole = sha256(Buffer.concat(parts));
  t.deepEqual(chaos.received.map((r) => r.bodySha256), [whole, whole]);
});

test('the per-try timeout cuts a hanging attempt and, with timeout in retryOn, the retry answers', async (t) => {
  const chaos = await startChaos(t);
  const fixture = await sidecarFor(t, chaos, {
    retries: { perTryTimeout: '200ms', retryOn: ['timeout'], backoff: { base: '1ms', max: '1ms' } },
  });
  chaos.queue.push({ kind: 'hang' });
  const res = await call(fixture, '/slow-then-fast');
  t.is(res.statusCode, 200);
  t.is(chaos.received.length, 2);
  t.is(await metric(fixture, /meshlet_retries_total\{upstream="chaos",reason="timeout"[^}]*\} (\d+)/), 1);
});

test('under a 100% failure storm the budget bounds attempts: <= (1 + ratio) x requests + minPerSecond x seconds', async (t) => {
  const chaos = await startChaos(t, { kind: 'status', status: 503 });
  const fixture = await sidecarFor(t, chaos, {
    retries: { maxRetries: 3, backoff: { base: '1ms', max: '1ms' }, budget: { ratio: 0.2, minPerSecond: 5, window: '10s' } },
  });
  const started = performance.now();
  const requests = 200;
  for (let wave = 0; wave < requests / 20; wave++) {
    await Promise.all(Array.from({ length: 20 }, () => call(fixture, '/storm').then((r) => r.body.text())));
  }
  const seconds = (performance.now() - started) / 1000;
  const bound = (1 + 0.2) * requests + 5 * Math.ceil(seconds);
  t.true(chaos.received.length <= bound, `${chaos.received.length} attempts for ${requests} requests in ${seconds.toFixed(1)} s; bound ${bound}`);
  t.true(chaos.received.length > requests, 'some retries were still sent');
  t.true((await metric(fixture, /meshlet_retry_budget_exhausted_total\{upstream="chaos"[^}]*\} (\d+)/)) > 0);
});

test('each retry goes to another endpoint when there is one', async (t) => {
  const [a, b] = [await startChaos(t, { kind: 'status', status: 503 }), await startChaos(t, { kind: 'status', status: 503 })];
  const fixture = await startSidecar(t, {
    config: () => ({
      upstreams: {
        chaos: { endpoints: [a.url, b.url], retries: { maxRetries: 3, backoff: { base: '1ms', max: '1ms' }, budget: { ratio: 1, minPerSecond: 1000 } }, circuitBreaker: { enabled: false } },
      },
    }),
  });
  t.is((await call(fixture, '/x')).statusCode, 503);
  // Four attempts, alternating: never twice in a row on the same endpoint.
  t.is(a.received.length + b.received.length, 4);
  t.is(a.received.length, 2);
  t.is(b.received.length, 2);
});

test("a kept body's stream that undici destroys with an error raises nothing uncaught", async (t) => {
  const client = new Readable({ read() {} });
  const replay = new BodyReplay(client as unknown as IncomingMessage, 1024);
  client.push(Buffer.from('abc'));
  const first = replay.first();
  first.destroy(new Error('the attempt was reset'));
  const second = replay.replay();
  second.destroy(new Error('this one too'));
  await new Promise((resolve) => setImmediate(resolve));
  t.true(first.destroyed && second.destroyed);
});
