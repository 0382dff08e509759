/**
 * The inbound rate limit, an upstream's own concurrency limit, and the per-request control headers
 * (`x-meshlet-retries`, `x-meshlet-timeout`) that tighten policy for one call.
 */
import test from 'ava';
import { request } from 'undici';
import { startChaos } from './helpers/chaos.ts';
import { startSidecar, withFakeClock } from './helpers/with-sidecar.ts';

test('the inbound rate limit answers 429 rate_limited with Retry-After, counts it, and refills with time', withFakeClock, {
  config: () => ({ inbound: { rateLimit: { requestsPerSecond: 2, burst: 2 } } }),
}, async (t, { inbound, admin, clock }) => {
  const get = async () => {
    const res = await request(`${inbound}/x`);
    await res.body.text();
    return { status: res.statusCode, code: res.headers['x-meshlet-error'], retryAfter: res.headers['retry-after'] };
  };
  t.is((await get()).status, 200);
  t.is((await get()).status, 200);
  t.deepEqual(await get(), { status: 429, code: 'rate_limited', retryAfter: '1' });
  clock.advance(500); // one token back at 2 per second
  t.is((await get()).status, 200);
  t.is((await get()).status, 429);
  const metrics = await (await request(`${admin}/metrics`)).body.text();
  t.regex(metrics, /meshlet_rate_limited_total\{direction="inbound"[^}]*\} 2/);
  t.regex(metrics, /meshlet_local_replies_total\{direction="inbound",upstream="primary",reason="rate_limited"[^}]*\} 2/);
});

test("an upstream's own concurrency limit answers 503 overloaded and sends nothing more", async (t) => {
  const chaos = await startChaos(t, { kind: 'hang' });
  const fixture = await startSidecar(t, {
    config: () => ({ upstreams: { chaos: { endpoints: [chaos.url], limits: { maxConcurrentRequests: 1 } } } }),
  });
  const held = request(`${fixture.outbound}/held`, { headers: { host: 'chaos' } });
  await chaos.receivedAtLeast(1);
  const refused = await request(`${fixture.outbound}/more`, { headers: { host: 'chaos' } });
  t.is(refused.statusCode, 503);
  t.is(refused.headers['x-meshlet-error'], 'overloaded');
  t.regex(await refused.body.text(), /more than 1 requests in flight to chaos/);
  t.is(chaos.received.length, 1);
  chaos.behaviour = { kind: 'ok' };
  chaos.releaseHanging();
  t.is((await held).statusCode, 200);
  t.is((await request(`${fixture.outbound}/after`, { headers: { host: 'chaos' } })).statusCode, 200);
});

test('x-meshlet-retries lowers the retries for one request (never raises them), and no x-meshlet-* header leaves the sidecar', async (t) => {
  const chaos = await startChaos(t, { kind: 'reset-before-head' });
  const fixture = await startSidecar(t, {
    config: () => ({
      upstreams: { chaos: { endpoints: [chaos.url], retries: { maxRetries: 1, backoff: { base: '1ms', max: '1ms' }, budget: { ratio: 1 } }, circuitBreaker: { enabled: false } } },
    }),
  });
  const call = async (retries: string) => {
    const res = await request(`${fixture.outbound}/r${retries}`, { headers: { host: 'chaos', 'x-meshlet-retries': retries, 'x-meshlet-other': 'y' } });
    await res.body.text();
    return res.statusCode;
  };
  t.is(await call('0'), 502);
  t.is(chaos.received.length, 1, 'not retried');
  t.is(await call('5'), 502);
  t.is(chaos.received.length, 3, 'one retry, as configured: the header cannot raise it');
  for (const r of chaos.received) t.deepEqual(Object.keys(r.headers).filter((name) => name.startsWith('x-meshlet-')), []);
});

test('x-meshlet-timeout sets a total deadline for one request, and only shortens a configured one', withFakeClock, {
  upstream: () => {}, // never answers
  config: () => ({ upstreams: { echo: { timeouts: { total: '10s' }, circuitBreaker: { enabled: false }, retries: { maxRetries: 0 } } } }),
}, async (t, { outbound, upstream, clock }) => {
  const short = request(`${outbound}/short`, { headers: { host: 'echo', 'x-meshlet-timeout': '200ms' } });
  await upstream.received('/short');
  clock.advance(200);
  const res = await short;
  t.is(res.statusCode, 504);
  t.regex(await res.body.text(), /total request timeout/);
  const long = request(`${outbound}/long`, { headers: { host: 'echo', 'x-meshlet-timeout': '60s' } });
  await upstream.received('/long');
  clock.advance(10_000);
  t.is((await long).statusCode, 504, 'the configured 10 s still applies');
});
