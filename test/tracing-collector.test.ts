/**
 * The collector's troubles are never the requests': a collector that hangs, answers 500 or is not
 * there costs spans (bounded, counted), never latency. And the standard variables: OTEL_SDK_DISABLED,
 * OTEL_TRACES_SAMPLER.
 */
import test from 'ava';
import { request } from 'undici';
import { startCollector } from './helpers/otlp-collector.ts';
import { closedPort } from './helpers/servers.ts';
import { startSidecar, type Fixture } from './helpers/with-sidecar.ts';

const TRACING = { telemetry: { tracing: { enabled: true } } };

async function get(fixture: Fixture, path: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await request(`${fixture.inbound}${path}`, { headers });
  await res.body.text();
  return res.statusCode;
}

async function dropped(fixture: Fixture, reason: string): Promise<number> {
  const text = await fixture.sidecar.metrics.registry.getSingleMetricAsString('meshlet_trace_spans_dropped_total');
  return Number(new RegExp(`reason="${reason}"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? NaN);
}

test('a hung collector delays no request; the queue stays bounded and what it cannot hold is counted', async (t) => {
  const collector = await startCollector(t);
  collector.behaviour = 'hang';
  const fixture = await startSidecar(t, {
    config: () => TRACING,
    sidecar: { env: collector.env({ OTEL_BSP_MAX_QUEUE_SIZE: '8', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '4' }) },
  });
  // The first batch goes out, and the collector holds it.
  t.is(await get(fixture, '/first'), 200);
  await collector.waitForRequests(1);
  // All of these complete while that export is still hanging: none waits for the collector.
  for (let i = 0; i < 30; i++) t.is(await get(fixture, `/during-${i}`), 200);
  t.is(collector.spans.length, 0, 'the collector has answered nothing yet');
  // 62 spans, of which at most 2 exports of 4 in flight and 8 queued: the rest were dropped, and counted.
  t.true((await dropped(fixture, 'queue_full')) >= 62 - 8 - 8, `dropped ${await dropped(fixture, 'queue_full')}`);
  // Once the collector answers, tracing resumes.
  collector.release();
  t.is(await get(fixture, '/after'), 200);
  await collector.waitForSpans(1, (s) => s.attributes['url.path'] === '/after');
});

test('a collector answering 500, or not there at all, delays no request; the lost spans are counted and logged once', async (t) => {
  for (const kind of ['fails', 'gone'] as const) {
    const collector = await startCollector(t);
    collector.behaviour = 'fail';
    const endpoint = kind === 'fails' ? collector.url : `http://127.0.0.1:${await closedPort()}/v1/traces`;
    const fixture = await startSidecar(t, {
      config: () => TRACING,
      // A refused connection is retried with backoff (from 1 s) within the export timeout: keep it short.
      sidecar: { env: collector.env({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '300' }) },
    });
    for (let i = 0; i < 10; i++) t.is(await get(fixture, `/${kind}-${i}`), 200);
    const warning = await fixture.logs.next((l) => l.msg === 'tracing: spans cannot be exported; they are dropped and counted until the collector answers');
    t.like(warning, { level: 40, endpoint });
    t.true((await dropped(fixture, 'export_failed')) > 0, kind);
    t.is(fixture.logs.lines.filter((l) => l.msg === warning.msg).length, 1, 'one warning, not one per batch');
  }
});

test('OTEL_SDK_DISABLED=true turns tracing off: the traceparent passes unchanged, as with tracing off', async (t) => {
  const collector = await startCollector(t);
  const fixture = await startSidecar(t, { config: () => TRACING, sidecar: { env: collector.env({ OTEL_SDK_DISABLED: 'true' }) } });
  t.is(fixture.sidecar.tracing, null);
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  t.is(await get(fixture, '/plain', { traceparent }), 200);
  t.is(fixture.upstream.requests[0]!.headers.traceparent, traceparent);
  t.truthy(fixture.logs.lines.find((l) => l.msg === 'tracing is off: OTEL_SDK_DISABLED=true overrides telemetry.tracing.enabled'));
  const line = await fixture.logs.next((l) => l.type === 'access');
  t.false('traceId' in line);
});

test('OTEL_TRACES_SAMPLER: parent-based with ratio 0 samples no new trace, yet follows a sampled parent', async (t) => {
  const collector = await startCollector(t);
  const fixture = await startSidecar(t, {
    config: () => TRACING,
    sidecar: { env: collector.env({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }) },
  });
  t.is(await get(fixture, '/unsampled'), 200);
  const sampledParent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  t.is(await get(fixture, '/sampled', { traceparent: sampledParent }), 200);
  const [unsampled, sampled] = fixture.upstream.requests;
  // Not sampled, the trace still propagates: a span id of meshlet's, flags 00.
  t.regex(String(unsampled!.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  t.regex(String(sampled!.headers.traceparent), /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
  const spans = await collector.waitForSpans(2);
  t.true(spans.every((s) => s.traceId === '4bf92f3577b34da6a3ce929d0e0e4736'), 'only the sampled trace was exported');
  const line = (path: string) => fixture.logs.next((l) => l.type === 'access' && l.path === path);
  t.false('traceId' in (await line('/unsampled')), 'the access log names only traces a backend has');
  t.is((await line('/sampled')).traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
});
