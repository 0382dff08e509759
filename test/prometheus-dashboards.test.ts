/**
 * The dashboards proven on a real Prometheus: it scrapes a real meshlet under traffic (successes,
 * upstream errors, local replies), then every panel query of every dashboard is run through its HTTP
 * API with the template variables substituted as Grafana would ("All"). Each must parse; each must
 * return data, except those listed in EXPECTED_EMPTY.
 */
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import test from 'ava';
import { request } from 'undici';
import { closedPort } from './helpers/servers.ts';
import { dashboardFiles, panelQueries, readDashboard } from './helpers/dashboards.ts';
import { startPrometheus } from './helpers/prometheus.ts';
import { startSidecar } from './helpers/with-sidecar.ts';

/**
 * Queries of metrics that features not built yet will feed: empty until then. When one of them
 * returns data, the test says so: take it off this list. (None now: the traffic below opens the
 * `dead` upstream's breaker, retries into it, and spends its retry budget.)
 */
const EXPECTED_EMPTY = new Set<string>([]);

/** What Grafana puts in a query with every variable at "All" and a 1 s scrape interval. */
function substitute(expr: string): string {
  return expr.replaceAll('$__rate_interval', '4s').replace(/\$(job|instance|service)\b/g, '.*');
}

/** A stand-in for tracing (built later): a trace id per request, from its request id. */
const traceIdOf = (requestId: string) => Buffer.from(requestId).toString('hex').slice(0, 32).padEnd(32, '0');

test('every panel query of every dashboard parses on a real Prometheus and returns data', async (t) => {
  t.timeout(50_000);
  const held: ServerResponse[] = [];
  const dead = await closedPort();
  const fixture = await startSidecar(t, {
    processMetrics: true,
    upstream: (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/hold') return void held.push(res);
      res.statusCode = req.url === '/fail' ? 500 : req.url === '/busy' ? 503 : 200;
      res.end('x');
    },
    config: () => ({
      // Small enough that two held requests make the listener busy, so a third from the same source is 429 source_limited.
      inbound: { limits: { maxConcurrentRequests: 4, maxSourceShare: 0.25 } },
      upstreams: { dead: { endpoints: [`http://127.0.0.1:${dead}`] } },
      telemetry: { accessLog: { enabled: false } },
    }),
  });
  const { sidecar, inbound, outbound, metrics } = fixture;
  sidecar.metrics.traceIdOf = (ex) => traceIdOf(ex.requestId);
  let scrapes = 0;
  sidecar.metricsListener.on('request', (req: IncomingMessage) => {
    if (req.url === '/metrics') scrapes++;
  });
  /** Resolves when Prometheus has begun `n` more scrapes: the scrape before the last is stored by then. */
  const scraped = async (n: number) => {
    const until = scrapes + n;
    while (scrapes < until) await once(sidecar.metricsListener, 'request');
  };

  const prometheus = await startPrometheus(t, [new URL(metrics).host]);
  const send = async (origin: string, path: string, host?: string) =>
    (await request(`${origin}${path}`, host === undefined ? {} : { headers: { host } })).body.dump();
  // Two requests held by the primary make the inbound listener busy: a third from this source is limited.
  const holds = [request(`${inbound}/hold`), request(`${inbound}/hold`)];
  while (held.length < 2) await once(fixture.upstream.server, 'request');
  await send(inbound, '/limited');
  for (const res of held) res.end();
  await Promise.all(holds.map(async (res) => (await res).body.dump()));
  await scraped(1);
  const start = Date.now() / 1000;
  const traffic = scraped(6);
  let running = true;
  void traffic.then(() => (running = false));
  while (running) {
    await Promise.all([
      send(inbound, '/ok'), send(inbound, '/ok'), send(inbound, '/fail'), send(inbound, '/busy'),
      send(outbound, '/ok', 'echo'), send(outbound, '/x', 'nobody'), send(outbound, '/x', 'dead'),
    ]);
  }
  await scraped(2);

  const up = await prometheus.api<{ result: { value: [number, string] }[] }>('/api/v1/query', { query: 'up{job="meshlet"}' });
  t.is(up.result[0]?.value[1], '1', 'Prometheus scraped meshlet (in OpenMetrics, which it asks for first)');

  const problems: string[] = [];
  for (const file of await dashboardFiles()) {
    const dashboard = await readDashboard(file);
    for (const variable of ['job', 'instance', 'service']) {
      const definition = dashboard.templating.list.find((v) => v.name === variable)?.definition ?? '';
      const match = /^label_values\((.+), (\w+)\)$/.exec(definition);
      t.truthy(match, `${variable}: ${definition}`);
      const values = await prometheus.api<string[]>(`/api/v1/label/${match![2]}/values`, { 'match[]': substitute(match![1]!) });
      if (values.length === 0) problems.push(`${dashboard.uid}: variable ${variable} has no values`);
    }
    for (const { panel, target } of panelQueries(dashboard)) {
      const name = `${dashboard.uid} / ${panel} / ${target.refId}`;
      let result: unknown[];
      try {
        result = (await prometheus.api<{ result: unknown[] }>('/api/v1/query', { query: substitute(target.expr) })).result;
      } catch (error) {
        problems.push(`${name}: ${(error as Error).message}`);
        continue;
      }
      if (result.length === 0 && !EXPECTED_EMPTY.has(name)) problems.push(`${name}: no data`);
      if (result.length > 0 && EXPECTED_EMPTY.has(name)) problems.push(`${name}: has data now; take it off EXPECTED_EMPTY`);
    }
    for (const annotation of dashboard.annotations.list.filter((a) => a.expr !== undefined)) {
      // Parsed only: reloads happen when an operator reloads.
      await prometheus.api('/api/v1/query', { query: substitute(annotation.expr!) }).catch((error: Error) => {
        problems.push(`${dashboard.uid} / annotation ${annotation.name}: ${error.message}`);
      });
    }
  }
  t.deepEqual(problems, []);

  // The exemplars reached Prometheus: a latency bucket links to the trace of a request that fell in it.
  const exemplars = await prometheus.api<{ exemplars: { labels: { trace_id: string } }[] }[]>('/api/v1/query_exemplars', {
    query: 'meshlet_request_duration_seconds_bucket{job="meshlet"}',
    start: String(start),
    end: String(Date.now() / 1000 + 1),
  });
  const traceIds = exemplars.flatMap((series) => series.exemplars.map((e) => e.labels.trace_id));
  t.true(traceIds.length > 0, 'exemplars stored');
  t.true(traceIds.every((id) => /^[0-9a-f]{32}$/.test(id)), traceIds.join());
});
