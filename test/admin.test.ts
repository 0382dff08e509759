import test from 'ava';
import { request } from 'undici';
import { withSidecar } from './helpers/with-sidecar.ts';

test('/healthz is 200 while alive, even when the primary is down', withSidecar, {}, async (t, { admin, upstream, sidecar }) => {
  upstream.healthStatus = 500;
  await new Promise((resolve) => sidecar.probe.once('change', resolve));
  const res = await request(`${admin}/healthz`);
  t.is(res.statusCode, 200);
});

test('/readyz follows the primary health check, with the reason', withSidecar, {
  config: () => ({ inbound: { healthCheck: { unhealthyThreshold: 2 } } }),
}, async (t, { admin, upstream, sidecar }) => {
  t.is((await request(`${admin}/readyz`)).statusCode, 200);
  t.regex(await (await request(`${admin}/metrics`)).body.text(), /^meshlet_primary_healthy\{[^}]*\} 1$/m);
  upstream.healthStatus = 503;
  await new Promise((resolve) => sidecar.probe.once('change', resolve));
  const res = await request(`${admin}/readyz`);
  t.is(res.statusCode, 503);
  const body = (await res.body.json()) as { ready: boolean; reasons: string[] };
  t.false(body.ready);
  t.regex(body.reasons.join(), /primary unhealthy: health check answered 503/);
  t.regex(await (await request(`${admin}/metrics`)).body.text(), /^meshlet_primary_healthy\{[^}]*\} 0$/m);
  upstream.healthStatus = 200;
  await new Promise((resolve) => sidecar.probe.once('change', resolve));
  t.is((await request(`${admin}/readyz`)).statusCode, 200);
});

test('a primary whose health check hangs turns unhealthy after the probe timeout', withSidecar, {
  config: () => ({ inbound: { healthCheck: { timeout: '200ms', unhealthyThreshold: 1 } } }),
}, async (t, { admin, upstream, sidecar }) => {
  t.is((await request(`${admin}/readyz`)).statusCode, 200);
  upstream.healthStatus = 0;
  await new Promise((resolve) => sidecar.probe.once('change', resolve));
  const body = (await (await request(`${admin}/readyz`)).body.json()) as { reasons: string[] };
  t.deepEqual(body.reasons, ['primary unhealthy: health check failed: no answer within 200ms']);
});

test('a primary that refuses connections is unhealthy, with the reason', withSidecar, {
  config: () => ({ inbound: { healthCheck: { unhealthyThreshold: 1 } } }),
}, async (t, { admin, upstream, sidecar }) => {
  t.is((await request(`${admin}/readyz`)).statusCode, 200);
  upstream.server.closeAllConnections();
  upstream.server.close();
  await new Promise((resolve) => sidecar.probe.once('change', resolve));
  const body = (await (await request(`${admin}/readyz`)).body.json()) as { reasons: string[] };
  // A probe under way when the server closed is reset; the ones after it are refused.
  t.regex(body.reasons.join(), /^primary unhealthy: health check failed: (ECONNREFUSED|ECONNRESET)$/);
});

test('/metrics has the request, duration, first-byte, in-flight and local-reply series', withSidecar, {}, async (t, { admin, inbound, outbound }) => {
  await (await request(`${inbound}/a`)).body.text();
  await (await request(`${outbound}/b`, { headers: { host: 'echo' } })).body.text();
  await (await request(`${outbound}/c`, { headers: { host: 'nobody' } })).body.text();
  const res = await request(`${admin}/metrics`);
  t.regex(String(res.headers['content-type']), /^text\/plain/);
  const text = await res.body.text();
  t.regex(text, /meshlet_requests_total\{direction="inbound",upstream="primary",method="GET",code="200",service="test-agent"\} 1/);
  t.regex(text, /meshlet_requests_total\{direction="outbound",upstream="echo",method="GET",code="200",service="test-agent"\} 1/);
  t.regex(text, /meshlet_requests_total\{direction="outbound",upstream="unknown",method="GET",code="404",service="test-agent"\} 1/);
  t.regex(text, /meshlet_request_duration_seconds_count\{direction="outbound",upstream="echo",code="200"[^}]*\} 1/);
  t.regex(text, /meshlet_response_first_byte_seconds_count\{direction="inbound",upstream="primary"[^}]*\} 1/);
  t.regex(text, /meshlet_requests_in_flight\{direction="outbound",upstream="echo",service="test-agent"\} 0/);
  t.regex(text, /meshlet_local_replies_total\{direction="outbound",upstream="unknown",reason="unknown_upstream",service="test-agent"\} 1/);
  t.regex(text, /meshlet_upstream_endpoints\{upstream="echo",state="healthy",service="test-agent"\} 1/);
  t.notRegex(text, /nobody/); // client-chosen names never become label values
});

test('/config shows the effective config with secrets redacted, and its version', withSidecar, {
  config: () => ({ registry: { etcd: { endpoints: ['http://meshlet:s3cret@127.0.0.1:2379'] } } }),
}, async (t, { admin }) => {
  const body = (await (await request(`${admin}/config`)).body.json()) as {
    version: number;
    lastReload: unknown;
    config: {
      service: { name: string };
      defaults: { timeouts: { firstByte: number } };
      registry: { etcd: { endpoints: string[] } };
    };
  };
  t.is(body.version, 1);
  t.is(body.lastReload, null);
  const config = body.config;
  t.is(config.service.name, 'test-agent');
  t.is(config.defaults.timeouts.firstByte, 60_000);
  t.deepEqual(config.registry.etcd.endpoints, ['http://meshlet:[redacted]@127.0.0.1:2379']);
});

test('/upstreams lists every upstream with endpoints and in-flight counts', withSidecar, {}, async (t, { admin, upstream }) => {
  const body = (await (await request(`${admin}/upstreams`)).body.json()) as {
    primary: { name: string };
    upstreams: { name: string; endpoints: { url: string; inFlight: number }[] }[];
  };
  t.is(body.primary.name, 'primary');
  t.deepEqual(body.upstreams.map((u) => u.name), ['echo']);
  t.is(body.upstreams[0]!.endpoints[0]!.url, upstream.url);
  t.is(body.upstreams[0]!.endpoints[0]!.inFlight, 0);
});

test('unknown admin paths are 404, wrong methods 405', withSidecar, {}, async (t, { admin }) => {
  t.is((await request(`${admin}/nope`)).statusCode, 404);
  t.is((await request(`${admin}/metrics`, { method: 'POST' })).statusCode, 405);
});

test('/upstreams counts a request in flight on its endpoint', withSidecar, {
  upstream: (req, res) => {
    if (req.url !== '/hold') res.end('ok');
  },
  config: () => ({ upstreams: { echo: { retries: { maxRetries: 0 } } } }), // the reset below ends it
}, async (t, { admin, outbound, upstream }) => {
  const held = request(`${outbound}/hold`, { headers: { host: 'echo' } }).catch(() => undefined);
  await upstream.received('/hold');
  const body = (await (await request(`${admin}/upstreams`)).body.json()) as { upstreams: { inFlight: number; endpoints: { inFlight: number }[] }[] };
  t.is(body.upstreams[0]!.inFlight, 1);
  t.is(body.upstreams[0]!.endpoints[0]!.inFlight, 1);
  upstream.server.closeAllConnections();
  await held;
});
