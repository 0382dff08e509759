/**
 * Circuit breakers against a chaos upstream: when they open (and when not), what an open breaker
 * answers, the single half-open probe, recovery, forcing from the admin API, and the metrics.
 * Durations are short and configured; the tests await the breaker's own log lines, never sleep.
 */
import test from 'ava';
import { request } from 'undici';
import { startChaos, type ChaosUpstream } from './helpers/chaos.ts';
import { startSidecar, type Fixture } from './helpers/with-sidecar.ts';

async function sidecarFor(t: Parameters<typeof startSidecar>[0], chaos: ChaosUpstream, breaker: Record<string, unknown> = {}): Promise<Fixture> {
  return startSidecar(t, {
    config: () => ({
      upstreams: {
        chaos: {
          endpoints: [chaos.url],
          retries: { maxRetries: 0 },
          circuitBreaker: { volumeThreshold: 10, errorThresholdPercentage: 50, window: '10s', resetTimeout: '300ms', ...breaker },
        },
      },
    }),
  });
}

async function status(fixture: Fixture, path = '/'): Promise<number> {
  const res = await request(`${fixture.outbound}${path}`, { headers: { host: 'chaos' } });
  await res.body.text();
  return res.statusCode;
}

function transition(fixture: Fixture, msg: string, after = 0) {
  return fixture.logs.next((l) => l.msg === msg && fixture.logs.lines.indexOf(l) >= after);
}

test('the breaker opens only past volumeThreshold and the error threshold; open, it answers 503 circuit_open at once and sends nothing', async (t) => {
  const chaos = await startChaos(t, { kind: 'status', status: 503 });
  const fixture = await sidecarFor(t, chaos);
  for (let i = 0; i < 9; i++) t.is(await status(fixture), 503);
  t.is(fixture.sidecar.upstreams.get('chaos')!.breaker!.state, 'closed', '9 failures are below volumeThreshold (10)');
  t.is(await status(fixture), 503);
  const opened = await transition(fixture, 'circuit breaker opened');
  t.like(opened, { upstream: 'chaos', state: 'open' });
  t.regex(String(opened.reason), /10 of 10 counted attempts failed \(100%\)/);
  const received = chaos.received.length;
  const refused = await request(`${fixture.outbound}/x`, { headers: { host: 'chaos' } });
  t.is(refused.statusCode, 503);
  t.is(refused.headers['x-meshlet-error'], 'circuit_open');
  t.is(refused.headers['retry-after'], '1');
  await refused.body.text();
  t.is(chaos.received.length, received, 'nothing was sent upstream');
  const metrics = await fixture.sidecar.metrics.registry.metrics();
  t.regex(metrics, /meshlet_circuit_breaker_state\{upstream="chaos",state="open"[^}]*\} 1/);
  t.regex(metrics, /meshlet_circuit_breaker_state\{upstream="chaos",state="closed"[^}]*\} 0/);
  t.regex(metrics, /meshlet_circuit_breaker_transitions_total\{upstream="chaos",to="open"[^}]*\} 1/);
  t.regex(metrics, /meshlet_local_replies_total\{direction="outbound",upstream="chaos",reason="circuit_open"[^}]*\} 1/);
});

test('an error share at or below the threshold, and 4xx, never open it', async (t) => {
  const chaos = await startChaos(t, { kind: 'fail-share', percent: 50, status: 500 });
  const fixture = await sidecarFor(t, chaos);
  for (let i = 0; i < 40; i++) await status(fixture);
  chaos.behaviour = { kind: 'status', status: 404 };
  for (let i = 0; i < 40; i++) t.is(await status(fixture), 404);
  const breaker = fixture.sidecar.upstreams.get('chaos')!.breaker!;
  t.is(breaker.state, 'closed');
  t.like(breaker.window(), { requests: 80, failures: 20 });
});

test('half-open admits exactly one probe among concurrent callers; its success closes the breaker', async (t) => {
  const chaos = await startChaos(t, { kind: 'status', status: 503 });
  const fixture = await sidecarFor(t, chaos);
  for (let i = 0; i < 10; i++) await status(fixture);
  await transition(fixture, 'circuit breaker opened');
  await transition(fixture, 'circuit breaker half-open');
  chaos.behaviour = { kind: 'hang' };
  const before = chaos.received.length;
  const probe = request(`${fixture.outbound}/probe`, { headers: { host: 'chaos' } });
  await chaos.receivedAtLeast(before + 1);
  const others = await Promise.all(Array.from({ length: 5 }, () => status(fixture, '/other')));
  t.deepEqual(others, [503, 503, 503, 503, 503]);
  t.is(chaos.received.length, before + 1, 'only the probe reached the upstream');
  const mark = fixture.logs.lines.length;
  chaos.releaseHanging();
  chaos.behaviour = { kind: 'ok' };
  t.is((await probe).statusCode, 200);
  t.like(await transition(fixture, 'circuit breaker closed', mark), { reason: 'the half-open probe succeeded' });
  t.is(await status(fixture), 200);
  // The window was emptied on closing: one failure now cannot re-open it.
  t.like(fixture.sidecar.upstreams.get('chaos')!.breaker!.window(), { requests: 1, failures: 0 });
});

test('a failed probe re-opens the breaker', async (t) => {
  const chaos = await startChaos(t, { kind: 'reset-before-head' });
  const fixture = await sidecarFor(t, chaos);
  for (let i = 0; i < 10; i++) t.is(await status(fixture), 502);
  await transition(fixture, 'circuit breaker opened');
  const mark = fixture.logs.lines.length;
  await transition(fixture, 'circuit breaker half-open', mark);
  t.is(await status(fixture), 502, 'the probe went, and failed');
  t.like(await transition(fixture, 'circuit breaker opened', mark), { reason: 'the half-open probe failed (reset)' });
  t.is(await status(fixture), 503);
});

test('operators can force a breaker open or closed, see it in GET /breakers, and release it', async (t) => {
  const chaos = await startChaos(t);
  const fixture = await sidecarFor(t, chaos);
  const opened = await request(`${fixture.admin}/breakers/chaos/open`, { method: 'POST' });
  t.is(opened.statusCode, 200);
  t.like(await opened.body.json(), { upstream: 'chaos', state: 'open', forced: true });
  t.is(await status(fixture), 503);
  t.is(chaos.received.length, 0);
  const listed = (await (await request(`${fixture.admin}/breakers`)).body.json()) as { breakers: { upstream: string; forced: boolean; lastTransition: { reason: string } }[] };
  t.like(listed.breakers.find((b) => b.upstream === 'chaos'), { forced: true, lastTransition: { reason: 'forced open by POST /breakers/chaos/open' } });
  await (await request(`${fixture.admin}/breakers/chaos/release`, { method: 'POST' })).body.text();
  // Released, the breaker is back to its own judgement: closed, as it was before it was forced.
  t.like(await transition(fixture, 'circuit breaker closed'), { reason: 'released by an operator or a reload' });
  t.is(await status(fixture), 200);
  chaos.behaviour = { kind: 'status', status: 500 };
  await (await request(`${fixture.admin}/breakers/chaos/close`, { method: 'POST' })).body.text();
  for (let i = 0; i < 20; i++) t.is(await status(fixture), 500, 'forced closed, failures do not open it');
  t.is(fixture.sidecar.upstreams.get('chaos')!.breaker!.state, 'closed');
  const missing = await request(`${fixture.admin}/breakers/nobody/open`, { method: 'POST' });
  t.is(missing.statusCode, 404);
  await missing.body.text();
  const read = await request(`${fixture.admin}/breakers/chaos/open`);
  t.is(read.statusCode, 405, 'changes are POST only');
  await read.body.text();
});

test('retries never go into an open breaker', async (t) => {
  const chaos = await startChaos(t, { kind: 'status', status: 503 });
  const fixture = await startSidecar(t, {
    config: () => ({
      upstreams: {
        chaos: {
          endpoints: [chaos.url],
          retries: { maxRetries: 2, backoff: { base: '1ms', max: '1ms' }, budget: { ratio: 1, minPerSecond: 100 } },
          circuitBreaker: { volumeThreshold: 3, resetTimeout: '1m' },
        },
      },
    }),
  });
  t.is(await status(fixture), 503); // 3 attempts: the third opens the breaker
  t.is(chaos.received.length, 3);
  t.is(await status(fixture), 503);
  t.is(chaos.received.length, 3, 'the breaker is open: nothing more was sent, and nothing retried');
});
