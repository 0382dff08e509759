/**
 * Passive outlier detection over real endpoints, on a fake clock: ejection after consecutive failures,
 * return after the ejection time, longer ejections for repeat offenders, the max ejected percent, never
 * the last endpoint, and ejections kept across `setEndpoints`. Round-robin makes who gets what exact.
 */
import test from 'ava';
import type { ServerResponse } from 'node:http';
import { FakeClock } from './helpers/fake-clock.ts';
import { callPool, describePool, endpointGauge, received, startPool } from './helpers/endpoints.ts';

const ok = (_req: unknown, res: ServerResponse) => res.end('ok');
const failing = (_req: unknown, res: ServerResponse) => res.writeHead(503).end('down');

/** Round-robin so that counts are exact; no retries, so each request is one attempt; no breaker to stop them. */
const policy = (outlierDetection: Record<string, unknown>) => ({
  loadBalancer: { policy: 'round-robin' },
  retries: { maxRetries: 0 },
  circuitBreaker: { enabled: false },
  outlierDetection,
});

test('ejected after N failures in a row, traffic moves to the others, back after the ejection time, longer when ejected again', async (t) => {
  const clock = new FakeClock();
  const pool = await startPool(t, [ok, failing, ok], { clock, pool: policy({ consecutiveFailures: 3, baseEjectionTime: '30s' }) });
  const bad = pool.servers[1]!.url;
  await callPool(pool, 7);
  t.is((await describePool(pool)).endpoints[1]!.consecutiveFailures, 2);
  t.is((await describePool(pool)).endpoints[1]!.state, 'healthy', 'not before the third failure in a row');
  await callPool(pool, 1);
  const ejected = await pool.logs.next((l) => l.msg === 'endpoint ejected from load balancing');
  t.like(ejected, { upstream: 'pool', endpoint: bad, consecutiveFailures: 3, ejectionMs: 30_000, timesEjected: 1, lastFailure: '503' });
  t.deepEqual(await endpointGauge(pool), { healthy: 2, ejected: 1 });
  const view = (await describePool(pool)).endpoints[1]!;
  t.like(view, { state: 'ejected', timesEjected: 1, consecutiveFailures: 0 });
  t.true(Date.parse(view.ejectedUntil!) > Date.now() + 25_000);

  t.deepEqual(await callPool(pool, 10), Array(10).fill(200), 'the others take all the traffic');
  t.is(received(pool)[1], 3);
  t.is(received(pool).reduce((x, y) => x + y), 18);

  clock.advance(29_999);
  t.is((await describePool(pool)).endpoints[1]!.state, 'ejected');
  clock.advance(1);
  t.like(await pool.logs.next((l) => l.msg === 'endpoint returned to load balancing'), { upstream: 'pool', endpoint: bad });
  t.deepEqual(await endpointGauge(pool), { healthy: 3, ejected: 0 });
  t.like((await describePool(pool)).endpoints[1]!, { state: 'healthy', ejectedUntil: null, timesEjected: 1 });

  // Still failing: ejected again, for twice as long.
  await callPool(pool, 9);
  t.is(received(pool)[1], 6, 'back in rotation');
  t.is((await describePool(pool)).endpoints[1]!.state, 'ejected');
  t.is(pool.logs.lines.filter((l) => l.msg === 'endpoint ejected from load balancing').at(-1)!.ejectionMs, 60_000);
  clock.advance(30_000);
  t.is((await describePool(pool)).endpoints[1]!.state, 'ejected');
  clock.advance(30_000);
  t.is((await describePool(pool)).endpoints[1]!.state, 'healthy');

  // Two base ejection times back in service are forgiven: the next ejection is short again.
  clock.advance(60_000);
  await callPool(pool, 9);
  t.like(pool.logs.lines.filter((l) => l.msg === 'endpoint ejected from load balancing').at(-1), { ejectionMs: 30_000, timesEjected: 3 });
});

test('a success resets the count: failures that are not in a row never eject', async (t) => {
  let calls = 0;
  const flaky = (_req: unknown, res: ServerResponse) => res.writeHead(calls++ % 2 === 0 ? 503 : 200).end();
  const pool = await startPool(t, [ok, flaky], { clock: new FakeClock(), pool: policy({ consecutiveFailures: 2 }) });
  await callPool(pool, 20);
  t.deepEqual(await endpointGauge(pool), { healthy: 2, ejected: 0 });
});

test('no more than maxEjectedPercent of the endpoints are ejected at once', async (t) => {
  const pool = await startPool(t, [failing, failing, failing, ok], { clock: new FakeClock(), pool: policy({ consecutiveFailures: 2, maxEjectedPercent: 50 }) });
  await callPool(pool, 20);
  t.deepEqual(await endpointGauge(pool), { healthy: 2, ejected: 2 });
  const view = await describePool(pool);
  const stillIn = view.endpoints.slice(0, 3).find((e) => e.state === 'healthy')!;
  t.true(stillIn.consecutiveFailures > 2, 'failing, yet kept in service by the limit');
  const before = received(pool);
  await callPool(pool, 4);
  const index = view.endpoints.indexOf(stillIn);
  t.is(received(pool)[index], before[index]! + 2, 'and still served its share');
});

test('the last endpoint in service is never ejected, even at maxEjectedPercent 100', async (t) => {
  const pool = await startPool(t, [failing, failing], { clock: new FakeClock(), pool: policy({ consecutiveFailures: 2, maxEjectedPercent: 100 }) });
  const statuses = await callPool(pool, 10);
  t.deepEqual(statuses, Array(10).fill(503), "the upstream's own 503s: never no_healthy_endpoints");
  t.deepEqual(await endpointGauge(pool), { healthy: 1, ejected: 1 });
  t.is(received(pool).reduce((a, b) => a + b), 10);
});

test('with two endpoints or more, one may always be ejected, even at maxEjectedPercent 0', async (t) => {
  const pool = await startPool(t, [failing, ok, ok], { clock: new FakeClock(), pool: policy({ consecutiveFailures: 2, maxEjectedPercent: 0 }) });
  await callPool(pool, 9);
  t.deepEqual(await endpointGauge(pool), { healthy: 2, ejected: 1 });
});

test('setEndpoints keeps the ejections of endpoints that stay, drops those of endpoints that leave', async (t) => {
  const clock = new FakeClock();
  const pool = await startPool(t, [ok, failing, ok], { clock, pool: policy({ consecutiveFailures: 2 }) });
  const upstream = pool.sidecar.upstreams.get('pool')!;
  const [a, b, c] = pool.servers.map((s) => s.url);
  await callPool(pool, 6);
  t.deepEqual(await endpointGauge(pool), { healthy: 2, ejected: 1 });

  upstream.setEndpoints([b!, a!, c!]);
  t.like((await describePool(pool)).endpoints[0]!, { url: b, state: 'ejected', timesEjected: 1 });
  t.deepEqual(await endpointGauge(pool), { healthy: 2, ejected: 1 });
  await callPool(pool, 4);
  t.is(received(pool)[1], 2, 'still out of rotation');
  clock.advance(30_000);
  t.like((await describePool(pool)).endpoints[0]!, { state: 'healthy', timesEjected: 1 }, 'its ejection ends on time');

  await callPool(pool, 6);
  t.is((await describePool(pool)).endpoints[0]!.state, 'ejected');
  upstream.setEndpoints([a!, c!]);
  t.deepEqual(await endpointGauge(pool), { healthy: 2, ejected: 0 });
  upstream.setEndpoints([a!, c!, b!]);
  t.like((await describePool(pool)).endpoints[2]!, { state: 'healthy', timesEjected: 0, consecutiveFailures: 0 }, 'back as a new endpoint');
  clock.advance(300_000); // the old ejection's timer was cancelled with it
  t.is(pool.logs.lines.filter((l) => l.msg === 'endpoint returned to load balancing').length, 1);

  // A set made only of ejected endpoints gets them back: some endpoint must serve.
  await callPool(pool, 6);
  t.is((await describePool(pool)).endpoints[2]!.state, 'ejected');
  upstream.setEndpoints([b!]);
  t.deepEqual(await endpointGauge(pool), { healthy: 1, ejected: 0 });
  t.deepEqual(await callPool(pool, 1), [503]);
});
