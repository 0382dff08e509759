/**
 * The etcd backend against a real etcd (one per file, each test under its own prefix; the test that
 * stops etcd has its own).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { request } from 'undici';
import { startEtcd, type EtcdCluster } from './helpers/etcd.ts';
import { spawnMeshlet, type MeshletProcess } from './helpers/process.ts';
import { startUpstream } from './helpers/servers.ts';
import { Hooks, tempDir } from './helpers/temp-dir.ts';
import { startSidecar, type Fixture } from './helpers/with-sidecar.ts';

const TTL_MS = 1_000;

let shared: EtcdCluster;
const hooks = new Hooks();
test.before(async () => {
  shared = await startEtcd(hooks);
});
test.after.always(() => hooks.run());

function registryConfig(endpoints: string[], prefix: string): Record<string, unknown> {
  return { backend: 'etcd', ttl: `${TTL_MS}ms`, etcd: { endpoints, prefix } };
}

function agent(t: ExecutionContext, name: string, endpoints: string[], prefix: string): Promise<Fixture> {
  return startSidecar(t, {
    upstream: (_req, res) => res.end(name),
    // Round-robin, so that the balance is exact.
    config: () => ({ service: { name }, registry: registryConfig(endpoints, prefix), defaults: { loadBalancer: { policy: 'round-robin' } } }),
  });
}

async function agentProcess(t: ExecutionContext, name: string, answer: string, endpoints: string[], prefix: string): Promise<MeshletProcess> {
  const primary = await startUpstream(t, (_req, res) => res.end(answer));
  const config = join(await tempDir(t), 'meshlet.yaml');
  await writeFile(config, `service: { name: ${name} }\n`);
  return spawnMeshlet(t, ['run', '--config', config], {
    MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__INBOUND__PRIMARY: primary.url,
    MESHLET__INBOUND__HEALTHCHECK__INTERVAL: '50ms',
    MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
    MESHLET__TELEMETRY__ACCESSLOG__ENABLED: 'false',
    MESHLET__REGISTRY: JSON.stringify(registryConfig(endpoints, prefix)),
  });
}

async function body(url: string, host: string): Promise<string> {
  const res = await request(url, { headers: { host } });
  return `${res.statusCode} ${await res.body.text()}`;
}

test('instances register under leases; a sidecar discovers them and balances across them', async (t) => {
  const prefix = '/t1/';
  const researchers = [await agent(t, 'researcher', shared.endpoints, prefix), await agent(t, 'researcher', shared.endpoints, prefix)];
  await Promise.all(researchers.map((r) => r.logs.next((l) => l.msg === 'registered')));
  const started = performance.now();
  const planner = await agent(t, 'planner', shared.endpoints, prefix);
  const loaded = await planner.logs.next((l) => l.msg === 'registry loaded');
  t.log(`start to discovery cache loaded: ${Math.round(performance.now() - started)} ms`);
  t.is(loaded.instances, 2);
  const answers = new Set<string>();
  const ports = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const res = await request(`${planner.outbound}/x`, { headers: { host: 'researcher' } });
    answers.add(`${res.statusCode} ${await res.body.text()}`);
  }
  for (const r of researchers) ports.add(String(r.upstream.requests.filter((req) => req.url === '/x').length));
  t.deepEqual([...answers], ['200 researcher']);
  t.deepEqual([...ports], ['3'], 'round-robin across both instances');

  const client = new Etcd3({ hosts: shared.endpoints });
  t.teardown(() => client.close());
  const keys = await client.getAll().prefix(prefix).keys();
  t.is(keys.length, 3);
  t.true(keys.every((key) => /^\/t1\/(researcher|planner)\/(researcher|planner)-/.test(key)), keys.join());
  const registry = (await (await request(`${planner.admin}/registry`)).body.json()) as { backend: string; reachable: boolean; registration: { state: string } };
  t.like(registry, { backend: 'etcd', reachable: true, registration: { state: 'registered' } });
});

test('a sidecar killed with -9 drops out within the TTL; one stopped with SIGTERM deregisters at once', async (t) => {
  const prefix = '/t2/';
  const [one, two] = [await agentProcess(t, 'researcher', 'one', shared.endpoints, prefix), await agentProcess(t, 'researcher', 'two', shared.endpoints, prefix)];
  const ids = [String((await one.line((l) => l.msg === 'registered')).id), String((await two.line((l) => l.msg === 'registered')).id)];
  const planner = await agent(t, 'planner', shared.endpoints, prefix);
  await planner.logs.next((l) => l.msg === 'registry loaded');
  const seen = new Set([await body(`${planner.outbound}/x`, 'researcher'), await body(`${planner.outbound}/x`, 'researcher')]);
  t.deepEqual([...seen].sort(), ['200 one', '200 two']);

  const killed = performance.now();
  one.child.kill('SIGKILL');
  await planner.logs.next((l) => l.msg === 'instance left' && l.id === ids[0]);
  const removal = performance.now() - killed;
  t.log(`kill -9 to removal: ${Math.round(removal)} ms (ttl ${TTL_MS} ms)`);
  // etcd checks for expired leases every 500 ms.
  t.true(removal < TTL_MS + TTL_MS / 3 + 500 + 250, `removed after ${removal} ms`);
  t.is(await body(`${planner.outbound}/x`, 'researcher'), '200 two');

  const terminated = performance.now();
  two.child.kill('SIGTERM');
  await planner.logs.next((l) => l.msg === 'instance left' && l.id === ids[1]);
  t.true(performance.now() - terminated < TTL_MS / 2, 'the lease was revoked, not left to expire');
  t.is(await two.exit, 0);
});

test('a lease lost (revoked behind its back) is re-granted and the key put again', async (t) => {
  const prefix = '/t3/';
  const researcher = await agent(t, 'researcher', shared.endpoints, prefix);
  const id = String((await researcher.logs.next((l) => l.msg === 'registered')).id);
  const planner = await agent(t, 'planner', shared.endpoints, prefix);
  await planner.logs.next((l) => l.msg === 'registry loaded');
  const client = new Etcd3({ hosts: shared.endpoints });
  t.teardown(() => client.close());
  const key = `${prefix}researcher/${id}`;
  const before = (await client.get(key).exec()).kvs[0]!;
  await client.leaseClient.leaseRevoke({ ID: before.lease });
  await planner.logs.next((l) => l.msg === 'instance left' && l.id === id);
  await researcher.logs.next((l) => l.msg === 'registration lease re-granted');
  await planner.logs.next((l) => l.msg === 'instance joined' && l.id === id);
  const after = (await client.get(key).exec()).kvs[0]!;
  t.not(after.lease, before.lease);
  t.is(await body(`${planner.outbound}/x`, 'researcher'), '200 researcher');
  t.like((await (await request(`${researcher.admin}/registry`)).body.json()) as object, { registration: { state: 'registered' } });
});

test.serial('etcd stopped: the cache keeps serving; restarted: the lease is re-granted and the watch resumes', async (t) => {
  const etcd = await startEtcd(t);
  const prefix = '/t4/';
  const researcher = await agent(t, 'researcher', etcd.endpoints, prefix);
  await researcher.logs.next((l) => l.msg === 'registered');
  const planner = await agent(t, 'planner', etcd.endpoints, prefix);
  await planner.logs.next((l) => l.msg === 'registry loaded');

  await etcd.members[0]!.stop();
  await planner.logs.next((l) => l.msg === 'registry unreachable: serving the last known endpoints');
  t.is(await body(`${planner.outbound}/x`, 'researcher'), '200 researcher');
  const registry = (await (await request(`${planner.admin}/registry`)).body.json()) as { reachable: boolean; unreachable: { reason: string } };
  t.false(registry.reachable);
  t.truthy(registry.unreachable.reason);
  t.regex(await (await request(`${planner.admin}/metrics`)).body.text(), /^meshlet_registry_reachable\{backend="etcd",service="planner"\} 0$/m);
  // Cut off for twice the TTL, the client gives the lease up: readiness says why.
  await researcher.logs.next((l) => l.msg === 'registration lease lost; re-granting');
  const readyz = (await (await request(`${researcher.admin}/readyz`)).body.json()) as { reasons: string[] };
  t.regex(readyz.reasons.join(), /^not registered: /);
  t.is(await body(`${planner.outbound}/x`, 'researcher'), '200 researcher');

  await etcd.members[0]!.start();
  await researcher.logs.next((l) => l.msg === 'registration lease re-granted');
  await planner.logs.next((l) => l.msg === 'registry reachable again');
  t.is((await request(`${researcher.admin}/readyz`)).statusCode, 200);
  // The watch resumed: an agent that joins now is seen.
  const latecomer = await agent(t, 'latecomer', etcd.endpoints, prefix);
  await latecomer.logs.next((l) => l.msg === 'registered');
  await planner.logs.next((l) => l.msg === 'instance joined' && l.service === 'latecomer');
  t.is(await body(`${planner.outbound}/x`, 'latecomer'), '200 latecomer');
});
