/**
 * `node bench/registry.ts`: discovery at scale on a real etcd (Debian's `etcd-server`), with the real
 * meshlet CLI. Run `npm run build` first.
 *
 *   1. N instances (default 1,000, each its own service name) are put under the prefix; then W sidecars
 *      (default 4) start on the etcd backend. Measured: spawn → `registry loaded` with all N, and
 *      `listening` → `registry loaded` (without Node's own start).
 *   2. C changes (default 200: instances joining and leaving in turn, 25 ms apart) are made while
 *      the W sidecars watch; each change's arrival is read from each sidecar's `instance joined` /
 *      `instance left` log line. Measured: propagation p50 / p99 / max over C × W arrivals.
 *   3. The request path: the sidecar's CPU time per request over R sequential requests through its
 *      outbound listener to an upstream found in the registry, with the N other names in its table
 *      and without them, twice each, alternately, on the same sidecar.
 *   4. Registration to first routed request: a new sidecar logs `registered`; a watching sidecar is
 *      asked for it by name every 2 ms until it routes there. On etcd, and on sqlite (default 1 s poll).
 *
 *   node bench/registry.ts [--instances 1000] [--watchers 4] [--changes 200] [--requests 10000]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import { Agent, request } from 'undici';
import { startEtcd } from '../test/helpers/etcd.ts';
import { Hooks, tempDir } from '../test/helpers/temp-dir.ts';

const { values: args } = parseArgs({
  options: {
    instances: { type: 'string', default: '1000' },
    watchers: { type: 'string', default: '4' },
    changes: { type: 'string', default: '200' },
    requests: { type: 'string', default: '10000' },
  },
});
const INSTANCES = Number(args.instances);
const WATCHERS = Number(args.watchers);
const CHANGES = Number(args.changes);
const REQUESTS = Number(args.requests);
const PREFIX = '/bench/';
const CLI = new URL('../bin/meshlet.js', import.meta.url).pathname;

type Line = { msg?: string; id?: string; instances?: number; at: number };
type Sidecar = { child: ChildProcess; lines: Line[]; next: (match: (line: Line) => boolean) => Promise<Line>; spawnedAt: number };

const hooks = new Hooks();
const children: ChildProcess[] = [];

function startSidecar(name: string, endpoints: string[], primary: string, registry?: object): Sidecar {
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [CLI, 'run'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      MESHLET__SERVICE__NAME: name,
      MESHLET__SERVICE__DRAINDELAY: '0',
      MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__INBOUND__PRIMARY: primary,
      MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
      MESHLET__TELEMETRY__METRICS__LISTEN: '127.0.0.1:0',
      MESHLET__TELEMETRY__ACCESSLOG__ENABLED: 'false',
      MESHLET__UPSTREAMS: '{}',
      MESHLET__REGISTRY: JSON.stringify(registry ?? { backend: 'etcd', ttl: '10s', etcd: { endpoints, prefix: PREFIX } }),
      NODE_NO_WARNINGS: '1',
    },
  });
  children.push(child);
  const lines: Line[] = [];
  let waiters: { match: (line: Line) => boolean; resolve: (line: Line) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = { ...(JSON.parse(text) as Line), at: performance.now() };
    lines.push(line);
    waiters = waiters.filter((w) => (w.match(line) ? (w.resolve(line), false) : true));
  });
  const next = (match: (line: Line) => boolean) => {
    const found = lines.find(match);
    return found ? Promise.resolve(found) : new Promise<Line>((resolve) => waiters.push({ match, resolve }));
  };
  return { child, lines, next, spawnedAt };
}

function instance(id: string, service: string, address: string): string {
  return JSON.stringify({ id, service, address });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** The CPU time (user + system) the sidecar spent per request over REQUESTS sequential requests, in µs. */
async function requestCost(sidecar: Sidecar, outbound: string, host: string): Promise<{ cpuUs: number }> {
  const agent = new Agent({ connections: 1 });
  for (let i = 0; i < 200; i++) await (await request(`${outbound}/x`, { headers: { host }, dispatcher: agent })).body.text();
  const cpuBefore = await cpuSeconds(sidecar.child.pid!);
  for (let i = 0; i < REQUESTS; i++) await (await request(`${outbound}/x`, { headers: { host }, dispatcher: agent })).body.text();
  const cpuUs = (((await cpuSeconds(sidecar.child.pid!)) - cpuBefore) / REQUESTS) * 1e6;
  await agent.close();
  return { cpuUs };
}

/** A process's CPU time so far (user + system), in seconds, from /proc (clock ticks of 10 ms). */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function main(): Promise<void> {
  const etcd = await startEtcd(hooks);
  const client = new Etcd3({ hosts: etcd.endpoints });
  const server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // 1. N instances, then W sidecars.
  const lease = client.lease(60);
  const putAgents = async () => {
    for (let i = 0; i < INSTANCES; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, INSTANCES - i) }, (_, j) => lease.put(`${PREFIX}agent-${i + j}/agent-${i + j}-0`).value(instance(`agent-${i + j}-0`, `agent-${i + j}`, target)).exec()));
    }
  };
  await putAgents();
  await lease.put(`${PREFIX}target/target-0`).value(instance('target-0', 'target', target)).exec();
  const sidecars = Array.from({ length: WATCHERS }, (_, i) => startSidecar(`watcher-${i}`, etcd.endpoints, target));
  const loads = [];
  for (const sidecar of sidecars) {
    const [listening, loaded] = await Promise.all([sidecar.next((l) => l.msg === 'listening'), sidecar.next((l) => l.msg === 'registry loaded')]);
    loads.push({ fromSpawn: loaded.at - sidecar.spawnedAt, fromListening: loaded.at - listening.at, instances: loaded.instances ?? 0 });
  }
  console.log(`1. ${INSTANCES} instances in etcd; ${WATCHERS} sidecars started together; discovery cache complete (registry loaded):`);
  for (const [i, load] of loads.entries()) {
    console.log(`   sidecar ${i}: ${Math.round(load.fromSpawn)} ms after spawn, ${Math.round(load.fromListening)} ms after its listeners were up (${load.instances} instances)`);
  }

  // 2. Changes while they watch.
  await Promise.all(sidecars.map((s) => s.next((l) => l.msg === 'registered')));
  const made: { msg: string; id: string; at: number }[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const id = `change-${i >> 1}-0`;
    const key = `${PREFIX}change-${i >> 1}/${id}`;
    made.push({ msg: i % 2 === 0 ? 'instance joined' : 'instance left', id, at: performance.now() });
    if (i % 2 === 0) await lease.put(key).value(instance(id, `change-${i >> 1}`, target)).exec();
    else await client.delete().key(key).exec();
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const delays: number[] = [];
  for (const sidecar of sidecars) {
    for (const change of made) {
      const line = await sidecar.next((l) => l.msg === change.msg && l.id === change.id);
      delays.push(line.at - change.at);
    }
  }
  delays.sort((a, b) => a - b);
  console.log(`2. ${CHANGES} changes (joins and leaves) x ${WATCHERS} watching sidecars: propagation p50 ${percentile(delays, 50).toFixed(1)} ms, p99 ${percentile(delays, 99).toFixed(1)} ms, max ${delays.at(-1)!.toFixed(1)} ms`);

  // 3. The request path with N names in the table, and with only the sidecars and the target: the
  //    same sidecar, alternately, the N agents removed and put back in between (no process bias).
  const first = sidecars[0]!;
  const outbound = `http://${String((await first.next((l) => l.msg === 'listening' && (l as { listener?: string }).listener === 'outbound') as { address?: string }).address)}`;
  const seen = async (msg: string, since: number) => {
    while (first.lines.filter((l) => l.at > since && l.msg === msg && String(l.id).startsWith('agent-')).length < INSTANCES) await new Promise((resolve) => setTimeout(resolve, 20));
  };
  const many: number[] = [];
  const few: number[] = [];
  for (let pass = 0; pass < 2; pass++) {
    many.push((await requestCost(first, outbound, 'target')).cpuUs);
    const removed = performance.now();
    await client.delete().prefix(`${PREFIX}agent-`).exec();
    await seen('instance left', removed);
    few.push((await requestCost(first, outbound, 'target')).cpuUs);
    if (pass > 0) break;
    const added = performance.now();
    await putAgents();
    await seen('instance joined', added);
  }
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  console.log(
    `3. ${REQUESTS} sequential requests through outbound to a discovered upstream, twice each, on one sidecar: CPU per request with ${INSTANCES} more names in the table ${many.map((us) => us.toFixed(0)).join(', ')} µs, without ${few.map((us) => us.toFixed(0)).join(', ')} µs (ratio of the means ${(mean(many) / mean(few)).toFixed(2)}x)`,
  );

  // 4. Registration to first routed request.
  const dir = await tempDir(hooks, 'meshlet-bench-');
  const sqlite = { backend: 'sqlite', sqlite: { path: `${dir}/registry.db` } };
  const sqliteWatcher = startSidecar('sqlite-watcher', [], target, sqlite);
  await sqliteWatcher.next((l) => l.msg === 'registry loaded');
  const results = [];
  for (const [backend, watcher, registry] of [['etcd', first, undefined], ['sqlite', sqliteWatcher, sqlite]] as const) {
    const watcherOutbound = `http://${String((await watcher.next((l) => l.msg === 'listening' && (l as { listener?: string }).listener === 'outbound') as { address?: string }).address)}`;
    const samples = [];
    for (let i = 0; i < 5; i++) samples.push(await registrationToRoute(`newcomer-${backend}-${i}`, etcd.endpoints, target, registry, watcherOutbound));
    results.push(`${backend} ${samples.map((ms) => ms.toFixed(0)).join(', ')} ms`);
  }
  console.log(`4. registration to first routed request (5 sidecars each): ${results.join('; ')}`);

  server.close();
  client.close();
}

/** Start a sidecar called `name`; ms from its `registered` line to the first request `outbound` routes to it. */
async function registrationToRoute(name: string, endpoints: string[], primary: string, registry: object | undefined, outbound: string): Promise<number> {
  const newcomer = startSidecar(name, endpoints, primary, registry);
  const registered = await newcomer.next((l) => l.msg === 'registered');
  for (;;) {
    const res = await request(`${outbound}/x`, { headers: { host: name } });
    await res.body.text();
    if (res.statusCode === 200) {
      const routed = performance.now() - registered.at;
      newcomer.child.kill('SIGKILL');
      return routed;
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

// Interrupted, it still stops what it started (etcd would outlive it otherwise).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of children) child.kill('SIGKILL');
    void hooks.run().finally(() => process.exit(130));
  });
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const child of children) child.kill('SIGKILL');
    await hooks.run();
  });
