/**
 * Limits on connections, so that probes keep working when clients flood a listener; and a drain in two
 * phases that gives load balancers time to notice.
 */
import test from 'ava';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Agent, request } from 'undici';
import { maxConnections, descriptorLimit } from '../src/proxy/connection-limit.ts';
import { spawnMeshlet } from './helpers/process.ts';
import { startUpstream } from './helpers/servers.ts';
import { withSidecar } from './helpers/with-sidecar.ts';

/** Open `count` idle connections; each resolves once connected, or closed by the server. */
function openIdle(port: number, count: number): Promise<Socket[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Socket>((resolve) => {
          const socket = connect(port, '127.0.0.1');
          socket.on('error', () => {});
          socket.once('connect', () => resolve(socket));
          socket.once('close', () => resolve(socket));
        }),
    ),
  );
}

/** Until the server has seen every client socket close (bounded). */
async function connectionsDownTo(server: { getConnections(cb: (e: Error | null, n: number) => void): unknown }, count: number): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    const open = await new Promise<number>((resolve) => server.getConnections((_e, n) => resolve(n)));
    if (open <= count) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function metric(text: string, pattern: RegExp): number {
  return Number(pattern.exec(text)?.[1] ?? Number.NaN);
}

test('auto connection limits leave a reserve of descriptors, a quarter of the rest per listener', (t) => {
  t.is(maxConnections('auto', 1024), 224);
  t.is(maxConnections('auto', 256), 32);
  t.is(maxConnections('auto', 1_048_576), 262_112);
  t.is(maxConnections(500, 1024), 500);
  t.true(descriptorLimit() > 0);
  t.is(descriptorLimit('/nonexistent'), 1024);
});

test('connections over limits.maxConnections are closed as they arrive and counted; the listener serves again when they go', withSidecar, {
  config: () => ({ inbound: { limits: { maxConnections: 5 } } }),
}, async (t, { inbound, admin, sidecar }) => {
  const port = Number(new URL(inbound).port);
  const idle = await openIdle(port, 12);
  await Promise.all(idle.filter((s) => !s.closed).slice(5).map((s) => once(s, 'close')));
  const metrics = await (await request(`${admin}/metrics`)).body.text();
  t.is(metric(metrics, /meshlet_connections_open\{direction="inbound"[^}]*\} (\d+)/), 5);
  t.true(metric(metrics, /meshlet_connections_refused_total\{direction="inbound"[^}]*\} (\d+)/) >= 7);
  t.is(idle.filter((s) => !s.closed).length, 5, 'the five admitted connections stay open');
  for (const socket of idle) socket.destroy();
  await connectionsDownTo(sidecar.inbound.server, 0);
  const res = await request(`${inbound}/after`, { dispatcher: new Agent() });
  t.is(res.statusCode, 200);
  await res.body.text();
});

test('descriptor exhaustion in miniature: with ulimit -n 256, 400 idle connections leave /healthz answering and the listener recovers', async (t) => {
  const upstream = await startUpstream(t);
  const meshlet = spawnMeshlet(
    t,
    ['run', '--config', 'config/minimal.yaml'],
    {
      MESHLET__SERVICE__NAME: 'fds',
      MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__INBOUND__PRIMARY: upstream.url,
      MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
    },
    [],
    { openFiles: 256 },
  );
  const inbound = Number((await meshlet.listening('inbound')).split(':').pop());
  const admin = String((await meshlet.line((l) => l.msg === 'meshlet started')).admin);
  const flood = await openIdle(inbound, 400);
  t.teardown(() => flood.forEach((s) => s.destroy()));
  for (let i = 0; i < 10; i++) {
    const probe = await request(`http://${admin}/healthz`, { dispatcher: new Agent({ pipelining: 0 }) });
    t.is(probe.statusCode, 200);
    await probe.body.text();
  }
  const metrics = await (await request(`http://${admin}/metrics`)).body.text();
  t.is(metric(metrics, /meshlet_connections_open\{direction="inbound"[^}]*\} (\d+)/), 32);
  t.true(metric(metrics, /meshlet_connections_refused_total\{direction="inbound"[^}]*\} (\d+)/) >= 368);
  for (const socket of flood) socket.destroy();
  // Until meshlet has seen the flood's connections close (bounded: 2,000 scrapes at most).
  for (let i = 0; i < 2_000; i++) {
    const text = await (await request(`http://${admin}/metrics`)).body.text();
    if (metric(text, /meshlet_connections_open\{direction="inbound"[^}]*\} (\d+)/) === 0) break;
  }
  const res = await request(`http://127.0.0.1:${inbound}/recovered`, { dispatcher: new Agent() });
  t.is(res.statusCode, 200);
  t.is(await res.body.text(), 'ok');
  meshlet.child.kill('SIGTERM');
  t.is(await meshlet.exit, 0);
});

test('drain with a delay under steady keep-alive load: no resets, every request 200 or 503 draining, exit 0 in time', async (t) => {
  const upstream = await startUpstream(t);
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], {
    MESHLET__SERVICE__NAME: 'drain-delay',
    MESHLET__SERVICE__DRAINDELAY: '1s',
    MESHLET__SERVICE__DRAINTIMEOUT: '3s',
    MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__INBOUND__PRIMARY: upstream.url,
    MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
  });
  const inbound = `http://${await meshlet.listening('inbound')}`;
  const admin = String((await meshlet.line((l) => l.msg === 'meshlet started')).admin);
  const agent = new Agent({ connections: 4 });
  t.teardown(() => agent.close());
  const statuses = new Map<string, number>();
  const failures = new Map<string, number>();
  let closing = 0;
  let answered = 0;
  const warmedUp = Promise.withResolvers<void>();
  let exited = false;
  void meshlet.exit.then(() => (exited = true));
  // A load balancer in miniature: it probes /readyz every 100 ms and takes the endpoint out of
  // rotation after 3 failures in a row (Kubernetes' failureThreshold), well within the drain delay.
  let inRotation = true;
  const loadBalancer = (async () => {
    let failed = 0;
    while (inRotation && !exited) {
      const ready = await request(`http://${admin}/readyz`).then(
        async (res) => (await res.body.text(), res.statusCode === 200),
        () => false,
      );
      failed = ready ? 0 : failed + 1;
      if (failed >= 3) inRotation = false;
      else await new Promise((resolve) => setTimeout(resolve, 100)); // the probe period
    }
  })();
  const worker = async () => {
    // Bounded: at most 5,000 requests per worker, sent while the load balancer routes to meshlet.
    for (let i = 0; i < 5_000 && inRotation; i++) {
      try {
        const res = await request(`${inbound}/steady`, { dispatcher: agent });
        await res.body.text();
        const key = `${res.statusCode}${res.headers['x-meshlet-error'] ? ` ${res.headers['x-meshlet-error']}` : ''}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        if (++answered === 200) warmedUp.resolve();
        if (res.headers.connection === 'close') closing++;
      } catch (error) {
        const code = (error as { code?: string }).code ?? (error as Error).message;
        failures.set(code, (failures.get(code) ?? 0) + 1);
      }
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  await warmedUp.promise; // steady load: 200 requests answered before SIGTERM
  const started = performance.now();
  meshlet.child.kill('SIGTERM');
  t.is(await meshlet.exit, 0);
  const elapsed = performance.now() - started;
  await Promise.all([...workers, loadBalancer]);
  t.deepEqual([...failures.entries()], [], 'no request was refused or reset');
  t.deepEqual([...statuses.keys()].filter((k) => k !== '200' && k !== '503 draining'), []);
  t.true(closing > 0, 'responses during the delay carry Connection: close');
  t.false(inRotation, 'the load balancer noticed readiness failing');
  t.true(elapsed >= 1000 && elapsed < 1000 + 3000 + 1500, `exit after ${elapsed} ms`);
});

test('without a drain delay, a new connection during drain is refused at once', async (t) => {
  const release = Promise.withResolvers<void>();
  const upstream = await startUpstream(t, (_req, res) => void release.promise.then(() => res.end('done')));
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], {
    MESHLET__SERVICE__NAME: 'no-delay',
    MESHLET__SERVICE__DRAINDELAY: '0',
    MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__INBOUND__PRIMARY: upstream.url,
    MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
  });
  const inbound = `http://${await meshlet.listening('inbound')}`;
  const held = request(`${inbound}/held`);
  await upstream.received('/held');
  meshlet.child.kill('SIGTERM');
  await meshlet.line((l) => l.msg === 'draining');
  // The listener closes in the turn after that line; a connection that raced the close may be reset.
  // Either way a new connection is never served (at most answered 503 draining), and soon it is
  // refused outright (bounded: 50 tries).
  let refusal = '';
  for (let i = 0; i < 50 && refusal !== 'ECONNREFUSED'; i++) {
    const outcome = await request(`${inbound}/new`, { dispatcher: new Agent() }).then(
      (res) => `served ${res.statusCode}`,
      (error: { code?: string }) => error.code ?? 'error',
    );
    if (outcome === 'served 200') t.fail('a new connection during drain was served');
    refusal = outcome;
  }
  t.is(refusal, 'ECONNREFUSED');
  release.resolve();
  t.is((await held).statusCode, 200);
  t.is(await meshlet.exit, 0);
});
