import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { mkdtemp, open, readFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { Agent, request } from 'undici';
import { LogWriter } from '../src/telemetry/log-writer.ts';
import { startUpstream } from './helpers/servers.ts';
import { LogSink } from './helpers/with-sidecar.ts';

test('lines leave whole and in order, multi-byte text included', async (t) => {
  const file = join(await mkdtemp(join(tmpdir(), 'meshlet-log-')), 'out.log');
  const handle = await open(file, 'w');
  const writer = new LogWriter(handle.fd);
  const lines: string[] = [];
  for (let i = 0; i < 2000; i++) lines.push(JSON.stringify({ i, text: 'é🤖'.repeat(i % 50) }));
  for (let i = 0; i < lines.length; i += 10) t.true(writer.write(`${lines.slice(i, i + 10).join('\n')}\n`));
  await handle.close();
  t.deepEqual((await readFile(file, 'utf8')).trimEnd().split('\n'), lines);
});

test('a log reader that goes away does not take traffic down: meshlet says so once and drops logs', async (t) => {
  const upstream = await startUpstream(t);
  const child = spawn(process.execPath, [new URL('../bin/meshlet.js', import.meta.url).pathname, 'run', '--config', 'config/minimal.yaml'], {
    env: {
      ...process.env,
      MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__INBOUND__PRIMARY: upstream.url,
      MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
      MESHLET__TELEMETRY__METRICS__LISTEN: '127.0.0.1:0',
      MESHLET__SERVICE__DRAINDELAY: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const logs = new LogSink();
  child.stdout!.pipe(logs);
  const listening = await logs.next((l) => l.msg === 'listening' && l.listener === 'inbound');
  await logs.next((l) => l.msg === 'meshlet started');
  child.stdout!.destroy(); // the reader of meshlet's stdout is gone

  // Enough requests to fill several 4 KiB access-log batches.
  for (let i = 0; i < 60; i++) {
    const res = await request(`http://${String(listening.address)}/after-${i}`);
    t.is(res.statusCode, 200);
    await res.body.text();
  }
  child.kill('SIGTERM');
  const code = await new Promise((resolve) => child.on('exit', resolve));
  t.is(code, 0);
  t.is(stderr.match(/logs can no longer be written/g)?.length, 1, stderr);
});

/** A FIFO in a temporary directory: a real pipe, with a read end the test reads only when it chooses. */
function fifo(t: ExecutionContext): { readFd: number; writeFd: number } {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-fifo-'));
  const path = join(dir, 'stdout');
  execFileSync('mkfifo', [path]);
  const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK); // first: opening the write end needs a reader
  const writeFd = openSync(path, constants.O_WRONLY);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { readFd, writeFd };
}

/** Everything read from `stream` (a pipe's read end), with a way to await some text and the end. */
class Received {
  text = '';
  private readonly waiters: { part: string; resolve: () => void }[] = [];
  readonly ended: Promise<void>;
  readonly stream: Readable;

  constructor(stream: Readable) {
    this.stream = stream;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.text += chunk;
      for (const w of this.waiters.filter((w) => this.text.includes(w.part))) w.resolve();
    });
    this.ended = new Promise((resolve) => stream.once('end', resolve));
  }

  includes(part: string): Promise<void> {
    if (this.text.includes(part)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ part, resolve }));
  }

  lines(): string[] {
    return this.text.split('\n').slice(0, -1);
  }
}

/** Start reading a pipe's read end (libuv reads it from now on). */
const reading = (fd: number): Received => new Received(new Socket({ fd, readable: true, writable: false }));

/** `count` JSON lines of `bytes` bytes each (newline included), tagged with `tag`. */
function jsonLines(tag: string, count: number, bytes: number): string[] {
  return Array.from({ length: count }, (_, i) => {
    const head = JSON.stringify({ tag, i, pad: '' });
    return `${head.slice(0, -2)}${'x'.repeat(bytes - head.length - 1)}"}`;
  });
}
const joined = (lines: string[]): Buffer => Buffer.from(lines.map((l) => `${l}\n`).join(''));

test('a full pipe: the batch partly written is finished first, later batches are dropped whole and counted, lifecycle lines wait', async (t) => {
  const { readFd, writeFd } = fifo(t);
  const dropped = { access: 0, lifecycle: 0 };
  const writer = new LogWriter(writeFd, { onDropped: (kind, lines) => (dropped[kind] += lines) });
  t.teardown(() => writer.close());
  // Linux pipes hold 64 KiB: the first batch fits, the second only in part.
  const batches = [0, 1, 2, 3].map((n) => jsonLines(`batch-${n}`, 64, 700));
  for (const [n, expected] of [true, true, false, false].entries()) t.is(writer.writeBytes(joined(batches[n]!), joined(batches[n]!).length, 64), expected);
  t.true(writer.waitingBytes > 0, 'the rest of the batch written in part waits');
  t.deepEqual(dropped, { access: 128, lifecycle: 0 });
  t.true(writer.write('{"msg":"draining"}\n'), 'a lifecycle line is queued, not dropped');

  const received = reading(readFd);
  await received.includes('"msg":"draining"'); // written by the writer's retry as soon as the pipe has room
  t.is(writer.waitingBytes, 0);
  const after = jsonLines('batch-4', 64, 700);
  t.true(writer.writeBytes(joined(after), joined(after).length, 64));
  writer.close();
  closeSync(writeFd);
  await received.ended;
  t.deepEqual(received.lines(), [...batches[0]!, ...batches[1]!, '{"msg":"draining"}', ...after]);
  t.deepEqual(dropped, { access: 128, lifecycle: 0 });
});

test('lifecycle lines wait in a bounded queue (past 1 MiB they are dropped and counted); close waits for them, but not forever', async (t) => {
  const { readFd, writeFd } = fifo(t);
  const dropped = { access: 0, lifecycle: 0 };
  const writer = new LogWriter(writeFd, { onDropped: (kind, lines) => (dropped[kind] += lines) });
  t.teardown(() => writer.close());
  const fill = joined(jsonLines('fill', 64, 1024));
  while (writer.writeBytes(fill, fill.length, 64));
  const lifecycle = jsonLines('lifecycle', 1100, 1024);
  for (const line of lifecycle) writer.write(`${line}\n`);
  t.true(dropped.lifecycle > 0 && dropped.lifecycle < 100, `dropped ${dropped.lifecycle}`);

  const started = performance.now();
  await new Promise((resolve) => writer.flush(resolve));
  t.true(performance.now() - started < 2000, 'flush gives up on a pipe nobody reads');
  t.false(writer.flushSync(20));

  const received = reading(readFd);
  const kept = lifecycle.slice(0, lifecycle.length - dropped.lifecycle);
  await received.includes(kept.at(-1)!);
  writer.close();
  closeSync(writeFd);
  await received.ended;
  const lines = received.lines();
  t.deepEqual(lines.filter((l) => l.includes('"tag":"lifecycle"')), kept, 'the first lines are kept, whole and in order');
  t.is(lines.filter((l) => l.includes('"tag":"fill"')).length % 64, 0, 'fill batches arrive whole');
});

/** The real CLI with its stdout on a pipe (`fifo`) or on the socket pair Node's spawn makes (`socket`). */
function spawnWithStdout(t: ExecutionContext, stdout: 'fifo' | 'socket', env: Record<string, string>): { child: ChildProcess; received: Received } {
  const cli = new URL('../bin/meshlet.js', import.meta.url).pathname;
  const args = [cli, 'run', '--config', 'config/minimal.yaml'];
  const options = { env: { ...process.env, ...env } };
  let child: ChildProcess;
  let received: Received;
  if (stdout === 'fifo') {
    const { readFd, writeFd } = fifo(t);
    child = spawn(process.execPath, args, { ...options, stdio: ['ignore', writeFd, 'inherit'] });
    closeSync(writeFd); // the child holds the write end now: the read end sees EOF when it exits
    received = reading(readFd);
  } else {
    child = spawn(process.execPath, args, { ...options, stdio: ['ignore', 'pipe', 'inherit'] });
    received = new Received(child.stdout!);
  }
  t.teardown(() => child.kill('SIGKILL'));
  return { child, received };
}

const stalledReader = test.macro({
  async exec(t, stdout: 'fifo' | 'socket') {
    const upstream = await startUpstream(t);
    const { child, received } = spawnWithStdout(t, stdout, {
      MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__INBOUND__PRIMARY: upstream.url,
      MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
      MESHLET__TELEMETRY__METRICS__LISTEN: '127.0.0.1:0',
      MESHLET__SERVICE__DRAINDELAY: '0',
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await received.includes('"msg":"meshlet started"');
    const startup = received.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    const inbound = String(startup.find((l) => l.msg === 'listening' && l.listener === 'inbound')!.address);
    const admin = String(startup.find((l) => l.msg === 'meshlet started')!.admin);
    received.stream.pause(); // the reader stops reading: the pipe (and Node's buffer behind it) fills up

    // Lines of ~1.1 KB: 2,000 of them are 2.2 MB, far more than a pipe, a socket's buffers and Node's reader hold.
    const total = 2000;
    const client = new Agent({ connections: 8 });
    t.teardown(() => client.close());
    const started = performance.now();
    let next = 0;
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < total) {
          const i = next++;
          const res = await request(`http://${inbound}/stalled-${i}/${'x'.repeat(1000)}`, { dispatcher: client, signal: AbortSignal.timeout(3000) });
          statuses.push(res.statusCode);
          await res.body.text();
        }
      }),
    );
    const elapsed = performance.now() - started;
    t.is(statuses.filter((s) => s === 200).length, total);
    t.log(`${total} requests in ${Math.round(elapsed)} ms`);
    // Alone: 1.5-3 s; under the whole suite on 2 cores: up to ~6 s. A blocked loop fails on the per-request timeout.
    t.true(elapsed < 15_000, `${total} requests took ${Math.round(elapsed)} ms`);
    const metrics = await (await request(`http://${admin}/metrics`, { signal: AbortSignal.timeout(3000) })).body.text();
    const dropped = Number(/^meshlet_log_lines_dropped_total\{[^}]*kind="access"[^}]*\} (\d+)$/m.exec(metrics)?.[1]);
    t.log(`${dropped} access lines dropped`);
    t.true(dropped > 0, `dropped access lines: ${dropped}`);

    child.kill('SIGTERM'); // its lifecycle lines are logged while stdout is still full...
    received.stream.resume(); // ...and written once the reader reads again
    await received.ended;
    t.is(await exited, 0);
    const lines = received.lines();
    const parsed = lines.map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return { torn: l.slice(0, 200) };
      }
    });
    t.deepEqual(parsed.filter((l) => 'torn' in l), [], 'every line arrived whole');
    const messages = parsed.map((l) => l.msg);
    for (const msg of ['meshlet started', 'stopping', 'draining', 'drained']) t.true(messages.includes(msg), `${msg} arrived`);
    const access = parsed.filter((l) => l.type === 'access');
    t.true(access.length < total, `${access.length} access lines arrived`);
    t.true(access.every((l) => typeof l.path === 'string' && l.path.length > 1000 && l.status === 200));
  },
  title: (_, stdout: 'fifo' | 'socket') => `a stalled stdout reader does not slow requests (stdout on a ${stdout === 'fifo' ? 'pipe' : 'socket pair'})`,
});

test(stalledReader, 'fifo');
test(stalledReader, 'socket');
