/**
 * Hot reload: what changes and what stays (breaker state, pools, connections), a refused config that
 * leaves the one in force, keys that need a restart, the three triggers on the real CLI, and zero
 * failed requests when reloading under load.
 */
import test from 'ava';
import { mkdtemp, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startChaos } from './helpers/chaos.ts';
import { spawnMeshlet } from './helpers/process.ts';
import { startSidecar } from './helpers/with-sidecar.ts';

async function get(url: string, host: string): Promise<number> {
  const res = await request(url, { headers: { host } });
  await res.body.text();
  return res.statusCode;
}

test('a reload puts a changed policy in force for new requests, keeping the breaker (state and window) and the pools that did not change', async (t) => {
  const chaos = await startChaos(t, { kind: 'status', status: 503 });
  const fixture = await startSidecar(t, {
    config: () => ({ upstreams: { chaos: { endpoints: [chaos.url], retries: { maxRetries: 0 }, circuitBreaker: { volumeThreshold: 50 } } } }),
  });
  for (let i = 0; i < 5; i++) t.is(await get(`${fixture.outbound}/x`, 'chaos'), 503);
  const before = fixture.sidecar.upstreams.get('chaos')!;
  const sockets = new Set(chaos.received.map((r) => r.headers['x-forwarded-for']));
  t.is(sockets.size, 1);

  const report = await fixture.reloadWith({ upstreams: { chaos: { retries: { maxRetries: 1, budget: { ratio: 1 } } } } });
  t.like(report, { result: 'success', version: 2, changed: ['upstreams.chaos.retries.maxRetries', 'upstreams.chaos.retries.budget.ratio'], restartRequired: [] });
  const after = fixture.sidecar.upstreams.get('chaos')!;
  t.not(after, before, 'a new upstream for new requests');
  t.is(after.breaker, before.breaker, 'the same breaker, its window intact');
  t.like(after.breaker!.window(), { requests: 5, failures: 5 });
  t.is(after.endpoints[0], before.endpoints[0], 'the same endpoint and pool');
  const received = chaos.received.length;
  t.is(await get(`${fixture.outbound}/y`, 'chaos'), 503);
  t.is(chaos.received.length, received + 2, 'retried once, as the new policy says');

  await fixture.reloadWith({ upstreams: { chaos: { circuitBreaker: { volumeThreshold: 40 } } } });
  const third = fixture.sidecar.upstreams.get('chaos')!;
  t.not(third.breaker, after.breaker, 'new breaker settings: a new breaker');
  t.like(third.breaker!.window(), { requests: 0 });
  t.like(await fixture.logs.next((l) => l.msg === 'config reloaded' && l.version === 3), { trigger: 'POST /reload', changed: ['upstreams.chaos.circuitBreaker.volumeThreshold'] });
});

test('upstreams are added and removed by a reload; the rate limit changes too; a forced breaker holds until its upstream is reloaded', async (t) => {
  const chaos = await startChaos(t);
  const fixture = await startSidecar(t, { config: () => ({ upstreams: { chaos: { endpoints: [chaos.url] } } }) });
  t.is(await get(`${fixture.outbound}/`, 'later'), 404);
  await (await request(`${fixture.admin}/breakers/chaos/open`, { method: 'POST' })).body.text();
  t.is(await get(`${fixture.outbound}/`, 'chaos'), 503);
  await fixture.reloadWith({ upstreams: { later: { endpoints: [chaos.url] }, echo: null }, inbound: { rateLimit: { requestsPerSecond: 1, burst: 1 } } });
  t.is(await get(`${fixture.outbound}/`, 'later'), 200);
  t.is(await get(`${fixture.outbound}/`, 'echo'), 404, 'removed');
  t.is(await get(`${fixture.outbound}/`, 'chaos'), 503, 'still forced open: its upstream did not change');
  await fixture.reloadWith({ upstreams: { chaos: { retries: { maxRetries: 1 } } } });
  t.is(await get(`${fixture.outbound}/`, 'chaos'), 200, 'reloading its upstream releases a forced breaker');
  t.is((await request(`${fixture.inbound}/a`)).statusCode, 200);
  t.is((await request(`${fixture.inbound}/b`)).statusCode, 429, 'the new rate limit is in force');
});

test('a refused reload keeps the config in force and says why: log, GET /config, the metric', async (t) => {
  const fixture = await startSidecar(t);
  const refused = await request(`${fixture.admin}/reload`, { method: 'POST' }); // nothing changed yet
  t.is(refused.statusCode, 200);
  t.like(await refused.body.json(), { result: 'unchanged', version: 1 });
  const report = await fixture.reloadWith({ defaults: { retries: { maxRetries: -1 } }, upstreams: { echo: { nope: 1 } } });
  t.like(report, { result: 'failure', version: 1 });
  t.deepEqual(report.problems.sort(), ['defaults.retries.maxRetries: must be >= 0 (got -1)', 'upstreams.echo.nope: unknown key'].sort());
  const config = (await (await request(`${fixture.admin}/config`)).body.json()) as { version: number; lastFailure: { problems: string[] }; config: { defaults: { retries: { maxRetries: number } } } };
  t.is(config.version, 1);
  t.is(config.config.defaults.retries.maxRetries, 2);
  t.is(config.lastFailure.problems.length, 2);
  t.like(await fixture.logs.next((l) => l.msg === 'config reload refused: the config in force stays'), { level: 50, version: 1 });
  const metrics = await fixture.sidecar.metrics.registry.metrics();
  t.regex(metrics, /meshlet_config_reloads_total\{result="failure"[^}]*\} 1/);
  t.regex(metrics, /meshlet_config_reloads_total\{result="success"[^}]*\} 1/);
  t.is(await get(`${fixture.outbound}/`, 'echo'), 200);
});

test('keys that need a restart are reported and keep their values; the rest of the reload applies', async (t) => {
  const fixture = await startSidecar(t);
  const report = await fixture.reloadWith({ outbound: { listen: '127.0.0.1:1' }, inbound: { limits: { maxHeaderBytes: '8KiB' } }, defaults: { retries: { maxRetries: 1 } } });
  t.like(report, { result: 'success', version: 2 });
  t.deepEqual(report.restartRequired, ['inbound.limits.maxHeaderBytes', 'outbound.listen']);
  t.true(report.changed.includes('defaults.retries.maxRetries'));
  t.is(fixture.sidecar.config.outbound.listen, '127.0.0.1:0');
  t.is(fixture.sidecar.config.upstreams.echo!.retries.maxRetries, 1);
  t.like(await fixture.logs.next((l) => typeof l.msg === 'string' && l.msg.startsWith('these config keys changed but take effect only after a restart')), {
    keys: ['inbound.limits.maxHeaderBytes', 'outbound.listen'],
  });
});

test('under steady load, reloads fail no request', async (t) => {
  const [a, b] = [await startChaos(t), await startChaos(t)];
  const fixture = await startSidecar(t, { config: () => ({ upstreams: { chaos: { endpoints: [a.url, b.url] } } }) });
  const statuses: number[] = [];
  let running = true;
  const load = Array.from({ length: 8 }, async () => {
    while (running) statuses.push(await get(`${fixture.outbound}/load`, 'chaos'));
  });
  const changes: Record<string, unknown>[] = [
    { upstreams: { chaos: { retries: { maxRetries: 3 } } } },
    { upstreams: { chaos: { endpoints: [b.url, a.url] } } },
    { upstreams: { chaos: { circuitBreaker: { volumeThreshold: 30 }, timeouts: { connect: '2s' } } } },
    { upstreams: { chaos: { endpoints: [a.url] } } },
    { outbound: { limits: { maxConcurrentRequests: 100 } }, upstreams: { chaos: { loadBalancer: { policy: 'round-robin' } } } },
  ];
  for (const change of changes) {
    const seen = statuses.length;
    while (statuses.length < seen + 50) await new Promise((resolve) => setImmediate(resolve));
    t.is((await fixture.reloadWith(change)).result, 'success');
  }
  running = false;
  await Promise.all(load);
  t.true(statuses.length > 250);
  t.deepEqual([...new Set(statuses)], [200]);
});

test('the real CLI reloads on SIGHUP, on POST /reload and when its file changes', async (t) => {
  const chaos = await startChaos(t);
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-reload-'));
  const file = join(dir, 'meshlet.yaml');
  const write = async (upstreams: string) => {
    // As editors and Kubernetes do: write elsewhere, then rename over the file.
    await writeFile(`${file}.tmp`, `service: { name: reloader }\ninbound: { primary: "${chaos.url}" }\nupstreams:\n${upstreams}`);
    await rename(`${file}.tmp`, file);
  };
  await write(`  first: { endpoints: ["${chaos.url}"] }\n`);
  const meshlet = spawnMeshlet(t, ['run', '--config', file], {
    MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
  });
  const outbound = `http://${await meshlet.listening('outbound')}`;
  const admin = `http://${String((await meshlet.line((l) => l.msg === 'meshlet started')).admin)}`;
  t.is(await get(outbound, 'second'), 404);

  await write(`  first: { endpoints: ["${chaos.url}"] }\n  second: { endpoints: ["${chaos.url}"] }\n`);
  t.like(await meshlet.line((l) => l.msg === 'config reloaded'), { trigger: 'file', version: 2, changed: ['upstreams.second'] });
  t.is(await get(outbound, 'second'), 200);

  await writeFile(file, 'service: { name: reloader }\nupstreams: [broken\n'); // no rename: a plain write, also seen
  t.like(await meshlet.line((l) => l.msg === 'config reload refused: the config in force stays'), { trigger: 'file' });
  t.is(await get(outbound, 'second'), 200, 'the config in force stays');

  await write(`  third: { endpoints: ["${chaos.url}"] }\n`);
  await meshlet.line((l) => l.msg === 'config reloaded' && l.version === 3);
  meshlet.child.kill('SIGHUP');
  t.like(await meshlet.line((l) => l.trigger === 'SIGHUP'), { msg: 'config reloaded: nothing changed', version: 3 });
  const posted = await request(`${admin}/reload`, { method: 'POST' });
  t.like(await posted.body.json(), { result: 'unchanged', trigger: 'POST /reload', version: 3 });
  t.is(await get(outbound, 'third'), 200);
  t.is(await get(outbound, 'second'), 404);
});
