/** Running the real `meshlet` CLI as a child process and reading its JSON log lines. */
import { spawn, type ChildProcess } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { LogSink, type LogLine } from './with-sidecar.ts';

const CLI = new URL('../../bin/meshlet.js', import.meta.url).pathname;

export type MeshletProcess = {
  child: ChildProcess;
  /** Resolves with the first log line that matches (already seen or still to come). */
  line: (match: (line: LogLine) => boolean) => Promise<LogLine>;
  exit: Promise<number | null>;
  /** `host:port` of each listener, from its "listening" log line. */
  listening: (listener: 'inbound' | 'outbound') => Promise<string>;
  /** Every log line read so far. */
  logs: LogSink;
};

/**
 * `nodeArgs` go to Node before the CLI (`node --flag bin/meshlet.js ...`). Tests drain without the
 * load-balancer delay (`service.drainDelay`) unless `env` sets one, and with the metrics listener
 * on a free loopback port. `openFiles` runs meshlet under
 * `ulimit -n openFiles`.
 */
export function spawnMeshlet(
  t: ExecutionContext,
  args: string[],
  env: Record<string, string>,
  nodeArgs: string[] = [],
  options: { openFiles?: number } = {},
): MeshletProcess {
  const command = [process.execPath, ...nodeArgs, CLI, ...args];
  const [file, argv] =
    options.openFiles === undefined ? [command[0]!, command.slice(1)] : ['bash', ['-c', `ulimit -n ${options.openFiles} && exec "$@"`, 'meshlet', ...command]];
  const child = spawn(file, argv, {
    // The metrics listener's default (0.0.0.0:15090) would collide between tests run side by side.
    env: { ...process.env, MESHLET__SERVICE__DRAINDELAY: '0', MESHLET__TELEMETRY__METRICS__LISTEN: '127.0.0.1:0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const killIfRunning = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  t.teardown(killIfRunning);
  process.once('exit', killIfRunning); // also when ava times out and skips teardowns
  const logs = new LogSink();
  child.stdout!.pipe(logs);
  const line = (match: (line: LogLine) => boolean) => logs.next(match);
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = async (listener: 'inbound' | 'outbound') =>
    String((await line((l) => l.msg === 'listening' && l.listener === listener)).address);
  return { child, line, exit, listening, logs };
}
