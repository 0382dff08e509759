import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { request } from 'undici';
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
