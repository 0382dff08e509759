/** Running the real `meshlet` CLI as a child process and reading its JSON log lines. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { ExecutionContext } from 'ava';

const CLI = new URL('../../bin/meshlet.js', import.meta.url).pathname;

export type MeshletProcess = {
  child: ChildProcess;
  /** Resolves with the first log line that matches (already seen or still to come). */
  line: (match: (line: Record<string, unknown>) => boolean) => Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
  /** `host:port` of each listener, from its "listening" log line. */
  listening: (listener: 'inbound' | 'outbound') => Promise<string>;
};

export function spawnMeshlet(t: ExecutionContext, args: string[], env: Record<string, string>): MeshletProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const killIfRunning = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  t.teardown(killIfRunning);
  process.once('exit', killIfRunning); // also when ava times out and skips teardowns
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    for (const waiter of waiters.splice(0)) {
      if (waiter.match(line)) waiter.resolve(line);
      else waiters.push(waiter);
    }
  });
  const line = (match: (line: Record<string, unknown>) => boolean) => {
    const found = lines.find(match);
    return found ? Promise.resolve(found) : new Promise<Record<string, unknown>>((resolve) => waiters.push({ match, resolve }));
  };
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = async (listener: 'inbound' | 'outbound') =>
    String((await line((l) => l.msg === 'listening' && l.listener === listener)).address);
  return { child, line, exit, listening };
}
