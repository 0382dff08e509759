/**
 * Tracing end to end: three agents, each behind its own in-process sidecar, the real OTLP/HTTP
 * exporter sending to a receiver in the test. One trace must show agent A → sidecar → agent B →
 * sidecar → agent C, with the right kinds, parents and attributes, and each upstream must have seen
 * exactly one traceparent naming meshlet's CLIENT span.
 */
import test from 'ava';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { request } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { startCollector, type Collector, type ReceivedSpan } from './helpers/otlp-collector.ts';
import type { RequestHandler } from './helpers/servers.ts';
import { startSidecar, type Fixture } from './helpers/with-sidecar.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const AGENT_A_SPAN = '00f067aa0ba902b7';
const TRACESTATE = 'vendor=opaque,other=1';

/** A traced sidecar named `name` in front of `agent`, with `upstreams` to call by name. */
function tracedSidecar(t: Parameters<typeof startSidecar>[0], collector: Collector, name: string, agent: RequestHandler, upstreams: Record<string, string> = {}): Promise<Fixture> {
  return startSidecar(t, {
    upstream: agent,
    config: () => ({
      service: { name },
      telemetry: { tracing: { enabled: true } },
      upstreams: Object.fromEntries(Object.entries(upstreams).map(([upstream, url]) => [upstream, { endpoints: [url] }])),
    }),
    sidecar: { env: collector.env() },
  });
}

/** The values of every `name` header, as sent (raw, so that duplicates show). */
function rawValues(req: IncomingMessage, name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === name) values.push(req.rawHeaders[i + 1]!);
  return values;
}


test('one trace across three agents and their sidecars, each upstream seeing one traceparent from meshlet', async (t) => {
  const collector = await startCollector(t);
  const seen: Record<string, IncomingMessage> = {};
  const agentC: RequestHandler = (req, res) => {
    seen.c = req;
    res.end('c says hi');
  };
  const sidecarC = await tracedSidecar(t, collector, 'agent-c', agentC);
  let outboundB = '';
  // Agent B calls agent C through its own sidecar, passing on the traceparent (and tracestate) it got.
  const agentB: RequestHandler = (req, res) => {
    seen.b = req;
    void request(`${outboundB}/lookup?q=1`, { headers: { host: 'agent-c', traceparent: req.headers.traceparent!, tracestate: req.headers.tracestate! } })
      .then((answer) => answer.body.text())
      .then((text) => res.end(`b heard: ${text}`));
  };
  const sidecarB = await tracedSidecar(t, collector, 'agent-b', agentB, { 'agent-c': sidecarC.inbound });
  outboundB = sidecarB.outbound;
  const sidecarA = await tracedSidecar(t, collector, 'agent-a', (_req, res) => res.end(), { 'agent-b': sidecarB.inbound });

  // A scrape asking for OpenMetrics makes meshlet keep exemplars from then on.
  const openMetrics = { accept: 'application/openmetrics-text;version=1.0.0' };
  await (await request(`${sidecarA.metrics}/metrics`, { headers: openMetrics })).body.text();

  // Agent A, inside its own span, calls agent B through its sidecar's outbound listener.
  const res = await request(`${sidecarA.outbound}/ask`, {
    headers: { host: 'agent-b', traceparent: `00-${TRACE_ID}-${AGENT_A_SPAN}-01`, tracestate: TRACESTATE, 'user-agent': 'agent-a/1.0' },
  });
  t.is(await res.body.text(), 'b heard: c says hi');

  const spans = await collector.waitForSpans(8);
  t.is(spans.length, 8);
  t.true(spans.every((span) => span.traceId === TRACE_ID), 'every span is in agent A\'s trace');
  const find = (service: string, kind: string, upstream: string) => {
    const span = spans.find((s) => s.service === service && s.kind === kind && s.attributes['meshlet.upstream'] === upstream);
    if (span === undefined) throw new Error(`no ${kind} span of ${service} for ${upstream}`);
    return span;
  };
  const aServer = find('agent-a', 'server', 'agent-b');
  const aClient = find('agent-a', 'client', 'agent-b');
  const bInServer = find('agent-b', 'server', 'primary');
  const bInClient = find('agent-b', 'client', 'primary');
  const bOutServer = find('agent-b', 'server', 'agent-c');
  const bOutClient = find('agent-b', 'client', 'agent-c');
  const cServer = find('agent-c', 'server', 'primary');
  const cClient = find('agent-c', 'client', 'primary');

  // Parentage: each hop is a child of the one before it.
  const chain: [ReceivedSpan, string][] = [
    [aServer, AGENT_A_SPAN],
    [aClient, aServer.spanId],
    [bInServer, aClient.spanId],
    [bInClient, bInServer.spanId],
    [bOutServer, bInClient.spanId], // agent B passed on the traceparent it received
    [bOutClient, bOutServer.spanId],
    [cServer, bOutClient.spanId],
    [cClient, cServer.spanId],
  ];
  for (const [span, parent] of chain) t.is(span.parentSpanId, parent, `${span.service} ${span.kind} ${span.attributes['meshlet.upstream']}`);

  // What each agent received: exactly one traceparent, naming the CLIENT span that sent to it, and tracestate unchanged.
  for (const [agent, client] of [['b', bInClient], ['c', cClient]] as const) {
    const traceparents = rawValues(seen[agent]!, 'traceparent');
    t.is(traceparents.length, 1, `agent ${agent} got one traceparent`);
    t.is(traceparents[0], `00-${TRACE_ID}-${client.spanId}-01`);
    t.deepEqual(rawValues(seen[agent]!, 'tracestate'), [TRACESTATE]);
  }

  // Names and attributes (stable HTTP semantic conventions).
  t.true(spans.every((span) => span.name === 'GET'), 'span names are the method, never the path');
  t.like(aServer.attributes, {
    'http.request.method': 'GET',
    'url.path': '/ask',
    'url.scheme': 'http',
    'http.response.status_code': 200,
    'server.address': 'agent-b',
    'client.address': '127.0.0.1',
    'user_agent.original': 'agent-a/1.0',
    'network.protocol.version': '1.1',
  });
  const bPort = Number(new URL(sidecarB.inbound).port);
  t.like(aClient.attributes, {
    'http.request.method': 'GET',
    'server.address': '127.0.0.1',
    'server.port': bPort,
    'url.full': `http://127.0.0.1:${bPort}/ask`,
    'http.response.status_code': 200,
  });
  t.false('http.request.resend_count' in aClient.attributes, 'a first attempt is no resend');
  t.like(bOutServer.attributes, { 'url.path': '/lookup', 'url.query': 'q=1' });
  t.true(spans.every((span) => span.status.code === 0), 'nothing failed');

  // The access log line carries the trace id.
  const line = await sidecarA.logs.next((l) => l.type === 'access' && l.path === '/ask');
  t.is(line.traceId, TRACE_ID);
  const exported = await sidecarA.sidecar.metrics.registry.getSingleMetricAsString('meshlet_trace_spans_exported_total');
  t.regex(exported, /meshlet_trace_spans_exported_total\{[^}]*\} 2/);
  // And so does the latency histogram's exemplar.
  const scraped = await (await request(`${sidecarA.metrics}/metrics`, { headers: openMetrics })).body.text();
  t.regex(scraped, new RegExp(`^meshlet_request_duration_seconds_bucket\\{[^}]*direction="outbound"[^}]*\\} 1 # \\{trace_id="${TRACE_ID}"\\}`, 'm'));
});

test('a WebSocket upgrade gets a SERVER span, and the upstream a traceparent naming it', async (t) => {
  const collector = await startCollector(t);
  const fixture = await startSidecar(t, { config: () => ({ telemetry: { tracing: { enabled: true } } }), sidecar: { env: collector.env() } });
  const wss = new WebSocketServer({ server: fixture.upstream.server });
  t.teardown(() => wss.close());
  const upgraded = once(wss, 'connection') as Promise<[WebSocket, IncomingMessage]>;
  const client = new WebSocket(`${fixture.inbound.replace('http', 'ws')}/chat`, { headers: { traceparent: `00-${TRACE_ID}-${AGENT_A_SPAN}-01` } });
  const [, req] = await upgraded;
  await once(client, 'open');
  client.close();
  const [server] = await collector.waitForSpans(1, (s) => s.attributes['url.path'] === '/chat');
  t.like(server, { kind: 'server', traceId: TRACE_ID, parentSpanId: AGENT_A_SPAN, attributes: { 'http.response.status_code': 101 } });
  t.deepEqual(rawValues(req, 'traceparent'), [`00-${TRACE_ID}-${server!.spanId}-01`]);
});

test('a request without a traceparent starts a trace; an invalid or repeated one is replaced', async (t) => {
  const collector = await startCollector(t);
  const fixture = await startSidecar(t, {
    config: () => ({ telemetry: { tracing: { enabled: true } } }),
    sidecar: { env: collector.env() },
  });
  const cases: [string, Record<string, string | string[]>][] = [
    ['/none', {}],
    ['/invalid', { traceparent: '00-ZZZ-nope-01' }],
    ['/repeated', { traceparent: [`00-${TRACE_ID}-${AGENT_A_SPAN}-01`, `00-${TRACE_ID}-${AGENT_A_SPAN}-01`] }],
  ];
  for (const [path, headers] of cases) await (await request(`${fixture.inbound}${path}`, { headers })).body.text();
  const spans = await collector.waitForSpans(6);
  for (const [path] of cases) {
    const server = spans.find((s) => s.kind === 'server' && s.attributes['url.path'] === path)!;
    const client = spans.find((s) => s.kind === 'client' && s.parentSpanId === server.spanId)!;
    t.is(server.parentSpanId, '', `${path}: a new trace starts at meshlet`);
    t.not(server.traceId, TRACE_ID);
    const received = fixture.upstream.requests.find((r) => r.url === path)!;
    t.deepEqual(rawValues(received, 'traceparent'), [`00-${server.traceId}-${client.spanId}-01`], path);
  }
});

test('an unsampled request gets no spans, and each attempt sends the upstream meshlet\'s own traceparent, not sampled', async (t) => {
  const collector = await startCollector(t);
  let calls = 0;
  const fixture = await startSidecar(t, {
    // The first attempt of each request fails with 503, the retry succeeds.
    upstream: (_req, res) => {
      res.statusCode = calls++ % 2 === 0 ? 503 : 200;
      res.end();
    },
    config: () => ({ telemetry: { tracing: { enabled: true } }, inbound: { retries: { maxRetries: 1 } } }),
    sidecar: { env: collector.env() },
  });
  const UNSAMPLED = '0af7651916cd43dd8448eb211c80319c';
  const answer = await request(`${fixture.inbound}/quiet`, { headers: { traceparent: `00-${UNSAMPLED}-${AGENT_A_SPAN}-00` } });
  await answer.body.text();
  t.is(answer.statusCode, 200);
  const attempts = fixture.upstream.requests.filter((r) => r.url === '/quiet');
  t.is(attempts.length, 2);
  const sent = attempts.map((r) => rawValues(r, 'traceparent'));
  t.is(sent[0]!.length, 1, 'exactly one traceparent');
  t.deepEqual(sent[1], sent[0], 'the retry names the same (unrecorded) span');
  const [, traceId, parent, flags] = sent[0]![0]!.split('-');
  t.is(traceId, UNSAMPLED, 'the trace goes on');
  t.not(parent, AGENT_A_SPAN, "meshlet's span, not the client's");
  t.is(flags, '00', 'the upstream follows the decision');
  // A sampled request after it: once its spans arrive, the unsampled one's would have too.
  await (await request(`${fixture.inbound}/loud`, { headers: { traceparent: `00-${TRACE_ID}-${AGENT_A_SPAN}-01` } })).body.text();
  await collector.waitForSpans(3, (s) => s.traceId === TRACE_ID);
  t.deepEqual(collector.spans.filter((s) => s.traceId === UNSAMPLED), []);
});
