import test from 'ava';
import { request } from 'undici';
import { parseConfig } from '../src/config/load.ts';
import { withSidecar } from './helpers/with-sidecar.ts';

test('the metrics listener defaults to 0.0.0.0:15090, where Prometheus and kubelet probes reach it', (t) => {
  const loaded = parseConfig({ service: { name: 'x' } });
  if (!loaded.ok) return t.fail(loaded.problems.join());
  t.is(loaded.config.telemetry.metrics.listen, '0.0.0.0:15090');
  t.is(loaded.config.admin.listen, '127.0.0.1:15000', 'while admin stays on loopback');
});

test('the metrics listener serves GET /metrics, /healthz and /readyz', withSidecar, {}, async (t, { metrics, inbound }) => {
  await (await request(`${inbound}/a`)).body.text();
  const scrape = await request(`${metrics}/metrics`);
  t.is(scrape.statusCode, 200);
  t.regex(String(scrape.headers['content-type']), /^text\/plain; version=0.0.4/);
  t.regex(await scrape.body.text(), /^meshlet_requests_total\{direction="inbound",upstream="primary",method="GET",code="200"[^}]*\} 1$/m);
  const health = await request(`${metrics}/healthz`);
  t.is(health.statusCode, 200);
  t.like(await health.body.json(), { status: 'alive' });
  const ready = await request(`${metrics}/readyz`);
  t.is(ready.statusCode, 200);
  t.like(await ready.body.json(), { ready: true });
});

test('readiness on the metrics listener follows the primary, as on admin', withSidecar, {
  config: () => ({ inbound: { healthCheck: { unhealthyThreshold: 1 } } }),
}, async (t, { metrics, upstream, sidecar }) => {
  upstream.healthStatus = 503;
  await new Promise((resolve) => sidecar.probe.once('change', resolve));
  const ready = await request(`${metrics}/readyz`);
  t.is(ready.statusCode, 503);
  t.like(await ready.body.json(), { ready: false });
});

test('nothing else is reachable on the metrics listener: no config, no mutation', withSidecar, {}, async (t, { metrics, admin }) => {
  for (const path of ['/config', '/upstreams', '/breakers', '/registry']) {
    const res = await request(`${metrics}${path}`);
    await res.body.dump();
    t.is(res.statusCode, 404, path);
  }
  for (const [method, path] of [['POST', '/reload'], ['POST', '/breakers/echo/open'], ['POST', '/metrics'], ['DELETE', '/healthz']] as const) {
    const res = await request(`${metrics}${path}`, { method });
    await res.body.dump();
    t.true(res.statusCode === 404 || res.statusCode === 405, `${method} ${path}: ${res.statusCode}`);
  }
  const config = await request(`${admin}/config`);
  await config.body.dump();
  t.is(config.statusCode, 200, 'admin still serves everything');
});
