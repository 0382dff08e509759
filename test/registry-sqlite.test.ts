import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { request } from 'undici';
import { spawnMeshlet, type MeshletProcess } from './helpers/process.ts';
import { startUpstream, type RequestHandler } from './helpers/servers.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { startSidecar, type Fixture } from './helpers/with-sidecar.ts';

const TTL_MS = 1_000;
const POLL_MS = 50;

function registryConfig(path: string): Record<string, unknown> {
  return { backend: 'sqlite', ttl: `${TTL_MS}ms`, sqlite: { path, pollInterval: `${POLL_MS}ms` } };
}

/** An in-process sidecar called `name` on the sqlite registry at `path`, in front of its own primary. */
function agent(t: ExecutionContext, name: string, path: string, options: { handler?: RequestHandler; config?: Record<string, unknown> } = {}): Promise<Fixture> {
  return startSidecar(t, {
    upstream: options.handler ?? ((_req, res) => res.end(name)),
    // Round-robin, so that the balance is exact.
    config: () => ({ service: { name }, registry: registryConfig(path), defaults: { loadBalancer: { policy: 'round-robin' } }, ...options.config }),
  });
}

/** `meshlet run` in its own process, called `name`, in front of `primary`. */
async function agentProcess(t: ExecutionContext, name: string, primary: string, dir: string): Promise<MeshletProcess> {
  const config = join(dir, `${name}.yaml`);
  await writeFile(config, `service: { name: ${name} }\n`);
  return spawnMeshlet(t, ['run', '--config', config], {
    MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__INBOUND__PRIMARY: primary,
    MESHLET__INBOUND__HEALTHCHECK__INTERVAL: '50ms',
    MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
    MESHLET__TELEMETRY__ACCESSLOG__ENABLED: 'false',
    MESHLET__REGISTRY: JSON.stringify(registryConfig(join(dir, 'registry.db'))),
  });
}

type RegistryView = {
  reachable: boolean;
  registration: { state: string; reason?: string; instance: { id: string; address: string } };
  instances: { id: string; service: string; address: string }[];
};

async function registryOf(fixture: Fixture): Promise<RegistryView> {
  return (await (await request(`${fixture.admin}/registry`)).body.json()) as RegistryView;
}

async function get(url: string, host: string): Promise<{ status: number; body: string; error: string | undefined }> {
  const res = await request(url, { headers: { host } });
  return { status: res.statusCode, body: await res.body.text(), error: res.headers['x-meshlet-error'] as string | undefined };
}

test('a sidecar registers once its primary is healthy, and others reach it by name with no address in their config', async (t) => {
  const path = join(await tempDir(t), 'registry.db');
  const researcher = await agent(t, 'researcher', path);
  await researcher.logs.next((l) => l.msg === 'registered');
  const planner = await agent(t, 'planner', path);
  await planner.logs.next((l) => l.msg === 'registry loaded');
  t.deepEqual(await get(`${planner.outbound}/find`, 'researcher'), { status: 200, body: 'researcher', error: undefined });

  const own = await registryOf(researcher);
  t.is(own.registration.state, 'registered');
  t.is(own.registration.instance.address, researcher.inbound);
  t.true(own.reachable);
  await planner.logs.next((l) => l.msg === 'registered');
  const seen = await registryOf(planner);
  t.deepEqual(seen.instances.map((i) => [i.service, i.address]), [['planner', planner.inbound], ['researcher', researcher.inbound]]);
  t.is((await request(`${researcher.admin}/readyz`)).statusCode, 200);
  t.regex(await (await request(`${researcher.admin}/metrics`)).body.text(), /^meshlet_registry_registered\{backend="sqlite",service="researcher"\} 1$/m);
  // Neither configured nor registered: still not an open proxy.
  t.like(await get(`${planner.outbound}/x`, 'nobody'), { status: 404, error: 'unknown_upstream' });
});

test('a name configured without endpoints resolves in the registry and keeps its own policy', async (t) => {
  const path = join(await tempDir(t), 'registry.db');
  const researcher = await agent(t, 'researcher', path);
  await researcher.logs.next((l) => l.msg === 'registered');
  const planner = await agent(t, 'planner', path, { config: { upstreams: { researcher: { timeouts: { firstByte: '7s' } } } } });
  await planner.logs.next((l) => l.msg === 'registry loaded');
  t.is((await get(`${planner.outbound}/x`, 'researcher')).body, 'researcher');
  t.is(planner.sidecar.upstreams.get('researcher')!.policy.timeouts.firstByte, 7_000);
  const { upstreams } = (await (await request(`${planner.admin}/upstreams`)).body.json()) as { upstreams: { name: string; endpoints: { url: string }[] }[] };
  t.deepEqual(upstreams.find((u) => u.name === 'researcher')!.endpoints.map((e) => e.url), [researcher.inbound]);
  // A name that joined without being configured gets `defaults`.
  t.is(planner.sidecar.upstreams.get('planner')!.policy.timeouts.firstByte, 60_000);
});

test('a primary failing its health check is withdrawn, and registered again when it recovers', async (t) => {
  const path = join(await tempDir(t), 'registry.db');
  const researcher = await agent(t, 'researcher', path, { config: { inbound: { healthCheck: { unhealthyThreshold: 1 } } } });
  await researcher.logs.next((l) => l.msg === 'registered');
  const planner = await agent(t, 'planner', path);
  await planner.logs.next((l) => l.msg === 'registry loaded');
  t.is((await get(`${planner.outbound}/x`, 'researcher')).status, 200);

  researcher.upstream.healthStatus = 503;
  await planner.logs.next((l) => l.msg === 'instance left' && l.service === 'researcher');
  // Known but gone: 503 (it may come back), not 404.
  t.like(await get(`${planner.outbound}/x`, 'researcher'), { status: 503, error: 'no_healthy_endpoints' });
  const readyz = (await (await request(`${researcher.admin}/readyz`)).body.json()) as { reasons: string[] };
  t.true(readyz.reasons.includes('not registered: the primary is failing its health check'), readyz.reasons.join());
  t.is((await registryOf(researcher)).registration.state, 'withdrawn');
  t.regex(await (await request(`${researcher.admin}/metrics`)).body.text(), /^meshlet_registry_registered\{[^}]*\} 0$/m);

  researcher.upstream.healthStatus = 200;
  await planner.logs.next((l) => l.msg === 'instance joined' && l.service === 'researcher');
  t.is((await get(`${planner.outbound}/x`, 'researcher')).status, 200);
  t.is((await registryOf(researcher)).registration.state, 'registered');
});

test('an endpoint that leaves finishes the requests it has in flight', async (t) => {
  const path = join(await tempDir(t), 'registry.db');
  const release = Promise.withResolvers<void>();
  const researcher = await agent(t, 'researcher', path, {
    handler: (_req, res) => {
      res.write('first half, ');
      void release.promise.then(() => res.end('second half'));
    },
    config: { inbound: { healthCheck: { unhealthyThreshold: 1 } } },
  });
  await researcher.logs.next((l) => l.msg === 'registered');
  const planner = await agent(t, 'planner', path);
  await planner.logs.next((l) => l.msg === 'registry loaded');
  const inFlight = get(`${planner.outbound}/slow`, 'researcher');
  await researcher.upstream.received('/slow');
  researcher.upstream.healthStatus = 503;
  await planner.logs.next((l) => l.msg === 'instance left');
  release.resolve();
  t.deepEqual(await inFlight, { status: 200, body: 'first half, second half', error: undefined });
});

test('sidecar processes sharing one file: balanced by name, a kill -9 drops out within the TTL, SIGTERM deregisters at once', async (t) => {
  const dir = await tempDir(t);
  const primaries = await Promise.all(['one', 'two'].map((answer) => startUpstream(t, (_req, res) => res.end(answer))));
  const researchers = await Promise.all(primaries.map((primary) => agentProcess(t, 'researcher', primary.url, dir)));
  const ids = await Promise.all(researchers.map(async (r) => String((await r.line((l) => l.msg === 'registered')).id)));
  const planner = await agent(t, 'planner', join(dir, 'registry.db'));
  await planner.logs.next((l) => l.msg === 'registry loaded');
  t.is((await registryOf(planner)).instances.filter((i) => i.service === 'researcher').length, 2);

  const answers = [];
  for (let i = 0; i < 10; i++) answers.push((await get(`${planner.outbound}/x`, 'researcher')).body);
  t.deepEqual(answers.sort(), [...Array(5).fill('one'), ...Array(5).fill('two')]);

  const killed = performance.now();
  researchers[0]!.child.kill('SIGKILL');
  await planner.logs.next((l) => l.msg === 'instance left' && l.id === ids[0]);
  const removal = performance.now() - killed;
  t.log(`kill -9 to removal: ${Math.round(removal)} ms (ttl ${TTL_MS} ms)`);
  t.true(removal < TTL_MS + TTL_MS / 3 + POLL_MS + 250, `removed after ${removal} ms`);
  for (let i = 0; i < 4; i++) t.is((await get(`${planner.outbound}/x`, 'researcher')).body, 'two');

  const terminated = performance.now();
  researchers[1]!.child.kill('SIGTERM');
  await planner.logs.next((l) => l.msg === 'instance left' && l.id === ids[1]);
  const deregistration = performance.now() - terminated;
  t.true(deregistration < TTL_MS / 2, `deregistered after ${deregistration} ms: not by expiry`);
  t.is(await researchers[1]!.exit, 0);
  t.like(await get(`${planner.outbound}/x`, 'researcher'), { status: 503, error: 'no_healthy_endpoints' });
});
