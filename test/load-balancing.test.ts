/**
 * Load balancing over several real endpoints of one upstream: P2C on peak EWMA latency × in-flight
 * (the default) sends less to a slow endpoint; round-robin shares evenly; an endpoint set replaced
 * through `setEndpoints` keeps what it learnt about the endpoints that stay.
 */
import test from 'ava';
import type { ServerResponse } from 'node:http';
import { PeakEwma } from '../src/upstream/ewma.ts';
import { callPool, describePool, received, startPool } from './helpers/endpoints.ts';

const fast = (_req: unknown, res: ServerResponse) => res.end('fast');
const slow = (_req: unknown, res: ServerResponse) => setTimeout(() => res.end('slow'), 30);

test('p2c-ewma (default): an endpoint 30 ms slower gets clearly less of the traffic under load', async (t) => {
  const pool = await startPool(t, [fast, slow, fast]);
  const statuses = await callPool(pool, 240, 4);
  t.true(statuses.every((s) => s === 200));
  const [a, b, c] = received(pool);
  t.is(a! + b! + c!, 240);
  t.true(b! < 240 * 0.15, `the slow endpoint got ${b} of 240 (round-robin would give it 80)`);
  t.true(a! > 40 && c! > 40, `both fast endpoints share the rest: ${a} and ${c}`);
  const view = await describePool(pool);
  t.is(view.loadBalancer, 'p2c-ewma');
  // (Not compared with the fast ones': a single slow answer, the first connection's say, is their peak.)
  t.true(view.endpoints[1]!.ewmaMs >= 25, 'the slow endpoint is known to be slow');
});

test('round-robin: each endpoint in turn, the slow one included', async (t) => {
  const pool = await startPool(t, [fast, slow, fast], { pool: { loadBalancer: { policy: 'round-robin' } } });
  await callPool(pool, 30, 1);
  t.deepEqual(received(pool), [10, 10, 10]);
  t.is((await describePool(pool)).loadBalancer, 'round-robin');
});

test('setEndpoints: endpoints that stay keep their latency estimate; one that left and comes back starts afresh', async (t) => {
  const pool = await startPool(t, [fast, slow, fast]);
  await callPool(pool, 40, 4);
  const upstream = pool.sidecar.upstreams.get('pool')!;
  const [a, b, c] = upstream.endpoints;
  const slowBefore = (await describePool(pool)).endpoints[1]!.ewmaMs;
  t.true(slowBefore >= 25, 'the slow endpoint is known to be slow');
  upstream.setEndpoints([b!.url, c!.url, a!.url]);
  t.is(upstream.endpoints[0], b, 'the same endpoint: its connections and its estimate');
  const view = await describePool(pool);
  t.deepEqual(view.endpoints.map((e) => e.url), [b!.url, c!.url, a!.url]);
  t.true(Math.abs(view.endpoints[0]!.ewmaMs - slowBefore) < 3, 'still known to be slow');
  upstream.setEndpoints([a!.url, c!.url]);
  upstream.setEndpoints([a!.url, c!.url, b!.url]);
  t.not(upstream.endpoints[2], b, 'a new endpoint for the url that came back');
  const fresh = (await describePool(pool)).endpoints[2]!.ewmaMs;
  t.true(fresh > 28 && fresh <= 30, `starting from the default estimate, 30 ms (${fresh})`);
  await callPool(pool, 10, 1);
  t.is(received(pool).reduce((x, y) => x + y), 50, 'the new set serves');
});

test('peak EWMA: a slower latency replaces the estimate at once, a faster one blends in over the decay, and it fades when unobserved', (t) => {
  const ewma = new PeakEwma(10_000, 0);
  t.is(ewma.valueAt(0), 30, 'a new endpoint starts at 30 ms');
  ewma.observe(200, 0);
  t.is(ewma.valueAt(0), 200);
  ewma.observe(10, 10_000); // one decay later: the old estimate weighs e^-1
  t.is(Math.round(ewma.valueAt(10_000)), Math.round(200 / Math.E + 10 * (1 - 1 / Math.E)));
  const observed = ewma.valueAt(10_000);
  t.true(Math.abs(ewma.valueAt(20_000) - observed / Math.E) < 1e-9, 'unobserved for one decay, it fades by e');
});
