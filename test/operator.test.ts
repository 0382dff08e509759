/**
 * What an operator sees when starting meshlet goes wrong: one line naming the listener and the
 * address in use, a log line when the primary is down from the start, a clear Node version message.
 */
import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { closedPort } from './helpers/servers.ts';
import { spawnMeshlet } from './helpers/process.ts';

const CLI = new URL('../bin/meshlet.js', import.meta.url).pathname;

test('a port already in use: one line naming the listener and the address, no stack, exit 1', async (t) => {
  const squatter = createServer();
  squatter.listen(0, '127.0.0.1');
  await once(squatter, 'listening');
  t.teardown(() => squatter.close());
  const port = (squatter.address() as { port: number }).port;
  const child = spawn(process.execPath, [CLI, 'run', '--config', 'config/minimal.yaml'], {
    env: {
      ...process.env,
      MESHLET__INBOUND__LISTEN: `127.0.0.1:${port}`,
      MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
      MESHLET__TELEMETRY__METRICS__LISTEN: '127.0.0.1:0',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += String(chunk)));
  const [code] = (await once(child, 'exit')) as [number];
  t.is(code, 1);
  t.is(stderr, `meshlet: cannot listen on 127.0.0.1:${port} (inbound): the address is already in use (another process listens there)\n`);
});

test('a primary that is down from the start is named in the log at its first failed probe', async (t) => {
  const port = await closedPort();
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], {
    MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__INBOUND__PRIMARY: `http://127.0.0.1:${port}`,
    MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
  });
  const line = await meshlet.line((l) => l.msg === 'primary is not healthy yet');
  t.is(line.level, 40);
  t.regex(String(line.reason), /ECONNREFUSED/);
});

/** A Node older than 24 on this machine's PATH (Debian's), if there is one. */
function olderNode(): string | null {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    try {
      const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim();
      if (Number(version.slice(1).split('.')[0]) < 24) return candidate;
    } catch {
      // not installed there
    }
  }
  return null;
}

const older = olderNode();
(older === null ? test.skip : test)('on a Node older than 24, meshlet says which Node it needs before anything else', (t) => {
  let stderr = '';
  try {
    execFileSync(older!, [CLI, 'run'], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    t.fail('meshlet ran on an old Node');
  } catch (error) {
    stderr = String((error as { stderr: string }).stderr);
    t.is((error as { status: number }).status, 1);
  }
  t.regex(stderr, /^meshlet needs Node\.js 24 or newer; this is Node\.js \d+\./);
});
