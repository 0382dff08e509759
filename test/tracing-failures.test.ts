/**
 * What the spans say when things go wrong: retries as separate CLIENT spans with
 * `http.request.resend_count`, each with the traceparent its own attempt sent; an open breaker, a
 * local reply and a client that left recorded on the SERVER span (status, `error.type`).
 */
import test from 'ava';
import { request } from 'undici';
import { startChaos, type ChaosUpstream } from './helpers/chaos.ts';
import { startCollector, type Collector, type ReceivedSpan } from './helpers/otlp-collector.ts';
import { startSidecar, type Fixture } from './helpers/with-sidecar.ts';

const ERROR = 2;

async function tracedSidecar(t: Parameters<typeof startSidecar>[0], collector: Collector, chaos: ChaosUpstream): Promise<Fixture> {
  return startSidecar(t, {
    config: () => ({
      telemetry: { tracing: { enabled: true } },
      upstreams: { chaos: { endpoints: [chaos.url], retries: { backoff: { base: '1ms', max: '2ms' } } } },
    }),
    sidecar: { env: collector.env() },
  });
}

/** The SERVER span of the request for `path`, and its CLIENT spans in order of attempt. */
async function spansOf(collector: Collector, path: string, clients: number): Promise<{ server: ReceivedSpan; clients: ReceivedSpan[] }> {
  const [server] = await collector.waitForSpans(1, (s) => s.kind === 'server' && s.attributes['url.path'] === path);
  const children = await collector.waitForSpans(clients, (s) => s.kind === 'client' && s.parentSpanId === server!.spanId);
  children.sort((a, b) => Number(a.attributes['http.request.resend_count'] ?? 0) - Number(b.attributes['http.request.resend_count'] ?? 0));
  return { server: server!, clients: children };
}

test('each retry is a CLIENT span of its own, with resend_count and the traceparent its attempt sent', async (t) => {
  const collector = await startCollector(t);
  const chaos = await startChaos(t);
  chaos.queue.push({ kind: 'reset-before-head' }, { kind: 'status', status: 503 });
  const fixture = await tracedSidecar(t, collector, chaos);
  const res = await request(`${fixture.outbound}/flaky`, { headers: { host: 'chaos' } });
  t.is(res.statusCode, 200);
  await res.body.text();

  const { server, clients } = await spansOf(collector, '/flaky', 3);
  t.is(clients.length, 3);
  const [reset, unavailable, answered] = clients as [ReceivedSpan, ReceivedSpan, ReceivedSpan];
  t.false('http.request.resend_count' in reset.attributes);
  t.like(reset, { status: { code: ERROR }, attributes: { 'error.type': 'upstream_reset' } });
  t.like(unavailable, { status: { code: ERROR }, attributes: { 'http.request.resend_count': 1, 'http.response.status_code': 503, 'error.type': '503' } });
  t.like(answered, { status: { code: 0 }, attributes: { 'http.request.resend_count': 2, 'http.response.status_code': 200 } });
  t.false('error.type' in answered.attributes);
  t.like(server, { status: { code: 0 }, attributes: { 'http.response.status_code': 200 } });
  // The reset one never answered, but it did receive its request: each attempt named its own span.
  t.deepEqual(
    chaos.received.map((r) => r.headers.traceparent),
    clients.map((c) => `00-${server.traceId}-${c.spanId}-01`),
  );
});

test('an open breaker and a local reply are recorded on the SERVER span, with no CLIENT span', async (t) => {
  const collector = await startCollector(t);
  const chaos = await startChaos(t);
  const fixture = await tracedSidecar(t, collector, chaos);
  await (await request(`${fixture.admin}/breakers/chaos/open`, { method: 'POST' })).body.text();
  const rejected = await request(`${fixture.outbound}/guarded`, { headers: { host: 'chaos' } });
  t.is(rejected.statusCode, 503);
  await rejected.body.text();
  const unknown = await request(`${fixture.outbound}/where`, { headers: { host: 'nobody' } });
  t.is(unknown.statusCode, 404);
  await unknown.body.text();

  const { server: open } = await spansOf(collector, '/guarded', 0);
  t.like(open, { name: 'GET', status: { code: ERROR }, attributes: { 'error.type': 'circuit_open', 'http.response.status_code': 503, 'meshlet.upstream': 'chaos' } });
  const { server: notFound } = await spansOf(collector, '/where', 0);
  // A 4xx meshlet answered is the client's mistake: error.type says which, the status stays unset.
  t.like(notFound, { status: { code: 0 }, attributes: { 'error.type': 'unknown_upstream', 'http.response.status_code': 404 } });
  t.is(chaos.received.length, 0);
  t.false(collector.spans.some((s) => s.kind === 'client'), 'no attempt was made, so no CLIENT span');
});

test('a client that goes away is recorded on both spans', async (t) => {
  const collector = await startCollector(t);
  const chaos = await startChaos(t, { kind: 'hang' });
  const fixture = await tracedSidecar(t, collector, chaos);
  const controller = new AbortController();
  const pending = request(`${fixture.outbound}/slow`, { headers: { host: 'chaos' }, signal: controller.signal });
  await chaos.receivedAtLeast(1);
  controller.abort();
  await t.throwsAsync(pending);

  const { server, clients } = await spansOf(collector, '/slow', 1);
  t.like(server, { status: { code: ERROR }, attributes: { 'error.type': 'client_gone' } });
  t.false('http.response.status_code' in server.attributes, 'nothing was sent to the client');
  t.like(clients[0], { status: { code: ERROR }, attributes: { 'error.type': 'client_gone' } });
});
