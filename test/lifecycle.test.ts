import { readFile } from 'node:fs/promises';
import test from 'ava';
import { request } from 'undici';
import { startUpstream } from './helpers/servers.ts';
import { spawnMeshlet } from './helpers/process.ts';
import { RESOLVED_CONFIG_ENV } from '../src/cli.ts';

function env(primary: string): Record<string, string> {
  return {
    MESHLET__SERVICE__NAME: 'lifecycle',
    MESHLET__SERVICE__DRAINTIMEOUT: '10s',
    MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__INBOUND__PRIMARY: primary,
    MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
  };
}

test('SIGTERM: the request in flight completes, new requests are refused, exit 0', async (t) => {
  const release = Promise.withResolvers<void>();
  const upstream = await startUpstream(t, (req, res) => {
    if (req.url === '/slow') void release.promise.then(() => res.end('finished'));
    else res.end('ok');
  });
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], env(upstream.url));
  const inbound = `http://${await meshlet.listening('inbound')}`;

  const inFlight = request(`${inbound}/slow`);
  await upstream.received('/slow');
  meshlet.child.kill('SIGTERM');
  await meshlet.line((l) => l.msg === 'draining');

  // Listeners stop accepting at once: a new connection is refused.
  const refused = await request(`${inbound}/new`, { reset: true }).catch((error: Error & { code?: string }) => error);
  t.true(refused instanceof Error, 'a new connection during drain must not be served');

  release.resolve();
  const res = await inFlight;
  t.is(res.statusCode, 200);
  t.is(await res.body.text(), 'finished');
  t.is(await meshlet.exit, 0);
  t.truthy(await meshlet.line((l) => l.msg === 'drained'));
});

test('SIGTERM with an idle keep-alive connection exits promptly', async (t) => {
  const upstream = await startUpstream(t);
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], env(upstream.url));
  const inbound = `http://${await meshlet.listening('inbound')}`;
  const res = await request(`${inbound}/ok`); // undici keeps this connection alive
  await res.body.text();
  const started = performance.now();
  meshlet.child.kill('SIGTERM');
  t.is(await meshlet.exit, 0);
  t.true(performance.now() - started < 5000);
});

test('a config that fails validation stops `meshlet run` with the problems', async (t) => {
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], { MESHLET__INBOUND__LISTEN: 'nowhere' });
  t.is(await meshlet.exit, 1);
});

test('drain timeout: a request that never finishes is cut and the process still exits 0', async (t) => {
  const upstream = await startUpstream(t, () => {
    /* never answers */
  });
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], { ...env(upstream.url), MESHLET__SERVICE__DRAINTIMEOUT: '500ms' });
  const inbound = `http://${await meshlet.listening('inbound')}`;
  const stuck = request(`${inbound}/forever`).then(
    () => 'answered',
    () => 'cut',
  );
  await upstream.received('/forever');
  const started = performance.now();
  meshlet.child.kill('SIGINT');
  t.is(await meshlet.exit, 0);
  const elapsed = performance.now() - started;
  t.true(elapsed >= 450 && elapsed < 5000, `${elapsed}ms`);
  t.is(await stuck, 'cut');
});

test('meshlet runs with its V8 sizing and the config its launcher validated, unless the user chose the sizes', async (t) => {
  const upstream = await startUpstream(t);
  const inspect = async (extra: Record<string, string>, nodeArgs: string[] = []) => {
    const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], { ...env(upstream.url), ...extra }, nodeArgs);
    const inbound = await meshlet.listening('inbound');
    t.is((await request(`http://${inbound}/`)).statusCode, 200);
    const argv = (await readFile(`/proc/${meshlet.child.pid}/cmdline`, 'utf8')).split('\0');
    const environ = (await readFile(`/proc/${meshlet.child.pid}/environ`, 'utf8')).split('\0');
    meshlet.child.kill('SIGTERM');
    t.is(await meshlet.exit, 0, 'the process drains and exits 0 on SIGTERM');
    return { argv, handedOver: environ.some((entry) => entry.startsWith(`${RESOLVED_CONFIG_ENV}=`)) };
  };
  const sized = await inspect({});
  t.true(sized.argv.includes('--max-semi-space-size=8'));
  t.true(sized.argv.includes('--heap-growing-percent=20'));
  t.true(sized.handedOver, 'the re-executed process runs the config the launcher validated');

  const oneChosen = await inspect({ NODE_OPTIONS: '--max-semi-space-size=16' });
  t.false(oneChosen.argv.some((arg) => arg.startsWith('--max-semi-space-size')), 'the size NODE_OPTIONS chose is the one V8 uses');
  t.true(oneChosen.argv.includes('--heap-growing-percent=20'));

  // A config too large to pass in the environment (Linux: 128 KiB a string) is loaded again instead.
  const endpoints = Array.from({ length: 3000 }, (_, i) => `http://127.0.0.1:${10000 + i}`).join(',');
  const large = await inspect({ MESHLET__UPSTREAMS__CROWD__ENDPOINTS: `[${endpoints}]` });
  t.true(large.argv.includes('--heap-growing-percent=20'));
  t.false(large.handedOver);

  // Node refuses --heap-growing-percent in NODE_OPTIONS: it goes on Node's command line.
  const allChosen = await inspect({ NODE_OPTIONS: '--max-semi-space-size=16' }, ['--heap-growing-percent=50']);
  t.deepEqual(allChosen.argv.filter((arg) => arg.startsWith('--')), ['--heap-growing-percent=50', '--config']);
  t.false(allChosen.handedOver, 'nothing to re-execute for: the process loads its config itself');
});
