/**
 * A real etcd (Debian's `etcd-server`) on free loopback ports with a temporary data dir, stopped when
 * the test ends. One member, or a cluster of several. Election timing is shortened (50 ms heartbeat,
 * 500 ms election) so that a lease TTL of 1 s is honoured (etcd raises TTLs below 1.5 x the election
 * timeout) and a cluster elects a new leader quickly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../examples/free-port.ts';
import { tempDir, type Teardowns } from './temp-dir.ts';

export type EtcdMember = {
  name: string;
  /** http://127.0.0.1:PORT, for clients. */
  endpoint: string;
  /** Start it (again, with the same data). Resolves once it serves clients. */
  start(): Promise<void>;
  /** Stop it: SIGTERM (graceful), or SIGKILL. Resolves once it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
};

export type EtcdCluster = { members: EtcdMember[]; endpoints: string[] };

/** A cluster of `size` members (1: a single etcd), started and serving. */
export async function startEtcd(t: Teardowns, size = 1): Promise<EtcdCluster> {
  const dir = await tempDir(t, 'meshlet-etcd-');
  const ports = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const initialCluster = ports.map((p, i) => `etcd${i}=http://127.0.0.1:${p.peer}`).join(',');
  const members = ports.map((p, i) => member(t, `etcd${i}`, join(dir, `etcd${i}`), p.client, p.peer, initialCluster));
  await Promise.all(members.map((m) => m.start()));
  return { members, endpoints: members.map((m) => m.endpoint) };
}

function member(t: Teardowns, name: string, dataDir: string, clientPort: number, peerPort: number, initialCluster: string): EtcdMember {
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${initialCluster}`,
    '--initial-cluster-state=new',
    '--heartbeat-interval=50',
    '--election-timeout=500',
    '--logger=zap',
    '--log-outputs=stderr',
  ];
  let child: ChildProcess | null = null;
  const kill = () => child?.kill('SIGKILL');
  t.teardown(kill);
  process.once('exit', kill);
  return {
    name,
    endpoint,
    async start() {
      const started = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      child = started;
      const lines = createInterface({ input: started.stderr! });
      const ready = Promise.withResolvers<void>();
      lines.on('line', (line) => {
        if (line.includes('serving client traffic')) ready.resolve();
      });
      started.once('exit', (code) => ready.reject(new Error(`etcd ${name} exited with ${code} before serving`)));
      await ready.promise;
    },
    async stop(signal = 'SIGTERM') {
      const running = child;
      if (running === null || running.exitCode !== null || running.signalCode !== null) return;
      const exited = once(running, 'exit');
      running.kill(signal);
      await exited;
    },
  };
}
