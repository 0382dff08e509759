import test from 'ava';
import { register } from 'prom-client';
import { Agent, request } from 'undici';
import { Metrics } from '../src/telemetry/metrics.ts';
import { promtool } from './helpers/promtool.ts';
import { withSidecar } from './helpers/with-sidecar.ts';

const OPENMETRICS = 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5';
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';

/** Sample lines (no comments) of an exposition. */
const samples = (text: string) => text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));

test('a real scrape under traffic passes promtool check metrics, process metrics included', withSidecar, {
  processMetrics: true,
  upstream: (req, res) => {
    res.statusCode = req.url === '/fail' ? 500 : 200;
    res.end();
  },
}, async (t, { inbound, outbound, metrics }) => {
  await (await request(`${inbound}/ok`)).body.text();
  await (await request(`${inbound}/fail`)).body.text();
  await (await request(`${outbound}/x`, { headers: { host: 'nobody' } })).body.text();
  const text = await (await request(`${metrics}/metrics`)).body.text();
  t.regex(text, /^meshlet_nodejs_active_handles\{/m, 'the process metrics are there');
  const lint = await promtool(['check', 'metrics'], text);
  t.is(lint.output, '');
  t.is(lint.code, 0);
});

test('meshlet never registers in prom-client\'s global registry', (t) => {
  const metrics = new Metrics({ serviceName: 'own' });
  t.teardown(() => metrics.close());
  t.deepEqual(register.getMetricsAsArray(), []);
});

test('latency buckets span a 1 ms tool call to a 10-minute LLM stream', async (t) => {
  const metrics = new Metrics({ serviceName: 'buckets', processMetrics: false });
  const route = metrics.route('outbound', 'llm');
  route.completed('POST', 200, 0.0008); // a lookup through two loopback sidecars
  route.completed('POST', 200, 95); // a long completion
  const text = await metrics.registry.metrics();
  const bucket = (le: string) => Number(new RegExp(`^meshlet_request_duration_seconds_bucket\\{le="${le}",[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1]);
  t.is(bucket('0.001'), 1, 'the fast call is told apart below 1 ms');
  t.is(bucket('60'), 1, 'the long call is not lumped with a one-minute one');
  t.is(bucket('120'), 2);
  t.is(bucket('600'), 2);
});

test('10,000 distinct paths, hosts, methods and request ids add no series', withSidecar, {
  config: () => ({ telemetry: { accessLog: { enabled: false } } }),
}, async (t, { inbound, outbound, metrics }) => {
  const agent = new Agent({ connections: 8 });
  t.teardown(() => agent.close());
  const methods = ['GET', 'POST', 'PROPFIND', 'MKCOL'];
  const send = async (i: number) => {
    const [origin, host] = i % 3 === 0 ? [inbound, 'a'] : i % 3 === 1 ? [outbound, 'echo'] : [outbound, `host-${i}.example`];
    const res = await request(`${origin}/c-${i}/item?id=${i}`, {
      method: methods[i % methods.length]!,
      headers: { host, 'x-request-id': `rid-${i}` },
      dispatcher: agent,
    });
    await res.body.dump();
  };
  const run = async (from: number, to: number) => {
    const workers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = from + w; i < to; i += 8) await send(i);
    });
    await Promise.all(workers);
  };
  const series = async () => samples(await (await request(`${metrics}/metrics`)).body.text());
  await run(0, 240); // every kind of request, each method on each listener
  const before = await series();
  await run(240, 10_000);
  const after = await series();
  t.is(after.length, before.length, 'the number of series stays where the first requests put it');
  const leaked = after.filter((line) => /c-\d|host-\d|rid-\d|PROPFIND|MKCOL/.test(line));
  t.deepEqual(leaked, []);
  t.regex(after.join('\n'), /meshlet_requests_total\{direction="outbound",upstream="unknown",method="OTHER",code="404"[^}]*\} \d+/);
});

test('OpenMetrics scrapes carry trace ids as exemplars on the latency buckets; text scrapes stay as they were', withSidecar, {}, async (t, { sidecar, inbound, metrics }) => {
  sidecar.metrics.traceIdOf = () => TRACE_ID; // what tracing will set
  const scrape = async (accept?: string) => {
    const res = await request(`${metrics}/metrics`, { headers: accept === undefined ? {} : { accept } });
    return { type: String(res.headers['content-type']), text: await res.body.text() };
  };
  await scrape(OPENMETRICS); // Prometheus asks for OpenMetrics first
  await (await request(`${inbound}/traced`)).body.text();
  const om = await scrape(OPENMETRICS);
  t.regex(om.type, /^application\/openmetrics-text; version=1.0.0/);
  t.true(om.text.endsWith('# EOF\n'));
  t.regex(om.text, /^# TYPE meshlet_requests counter$/m);
  t.regex(om.text, /^meshlet_requests_total\{direction="inbound",upstream="primary",method="GET",code="200",service="test-agent"\} 1$/m);
  const exemplar = new RegExp(`^meshlet_request_duration_seconds_bucket\\{le="([^"]+)",direction="inbound",upstream="primary",code="200"[^}]*\\} 1 # \\{trace_id="${TRACE_ID}"\\} ([\\d.e-]+) (\\d+\\.\\d{3})$`, 'm').exec(om.text);
  t.truthy(exemplar, 'the request\'s bucket links to its trace');
  t.true(Number(exemplar![2]) <= Number(exemplar![1]), 'the exemplar lies in its bucket');
  t.true(Math.abs(Number(exemplar![3]) - Date.now() / 1000) < 60);
  t.regex(om.text, new RegExp(`^meshlet_response_first_byte_seconds_bucket\\{[^}]*\\} 1 # \\{trace_id="${TRACE_ID}"\\}`, 'm'));
  const text = await scrape();
  t.regex(text.type, /^text\/plain; version=0.0.4/);
  t.regex(text.text, /^meshlet_requests_total\{direction="inbound",upstream="primary",method="GET",code="200",service="test-agent"\} 1$/m);
  t.regex(text.text, /^# TYPE meshlet_requests_total counter$/m, 'an OpenMetrics scrape did not rename the counters');
  t.notRegex(text.text, /trace_id/);
});

test('without a trace id source, OpenMetrics scrapes have no exemplars', withSidecar, {}, async (t, { inbound, metrics }) => {
  const scrape = async () => (await request(`${metrics}/metrics`, { headers: { accept: OPENMETRICS } })).body.text();
  await scrape();
  await (await request(`${inbound}/plain`)).body.text();
  const text = await scrape();
  t.regex(text, /^meshlet_request_duration_seconds_count\{[^}]*\} 1$/m);
  t.notRegex(text, / # \{/);
});
