/**
 * Tunnels (WebSocket upgrades) are counted, bounded, torn down when one side lingers half-closed, and
 * part of drain: a draining meshlet exits within its drain timeout whatever is open.
 */
import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { request } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { spawnMeshlet } from './helpers/process.ts';
import { startUpstream } from './helpers/servers.ts';
import { startSidecar } from './helpers/with-sidecar.ts';
import { WEBSOCKET_HANDSHAKE, parseHead } from './helpers/raw.ts';


/**
 * An upstream that accepts every upgrade by hand and then never closes its side, whatever the client
 * does: the peer that leaves a tunnel half-open. Resolves each accepted socket through `accepted`.
 */
async function stubbornUpstream(t: ExecutionContext): Promise<{ url: string; accepted: () => Promise<Socket> }> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      sockets.push(socket);
      server.emit('accepted', socket);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    accepted: async () => sockets.shift() ?? ((await once(server, 'accepted')) as [Socket])[0],
  };
}

/** Open a raw upgrade through meshlet and resolve once the 101 head has arrived. */
async function rawUpgrade(port: number, host: string): Promise<{ socket: Socket; head: string }> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(`GET /ws HTTP/1.1\r\nHost: ${host}\r\n${WEBSOCKET_HANDSHAKE}\r\n`);
  let head = '';
  while (!head.includes('\r\n\r\n')) head += String(((await once(socket, 'data')) as [Buffer])[0]);
  return { socket, head };
}

async function metricValue(admin: string, pattern: RegExp): Promise<number> {
  const text = await (await request(`${admin}/metrics`)).body.text();
  return Number(pattern.exec(text)?.[1] ?? Number.NaN);
}

const TUNNELS_OPEN = /meshlet_tunnels_open\{direction="outbound",upstream="stub"[^}]*\} (\d+)/;

test('an open tunnel is counted in meshlet_tunnels_open and /upstreams, and uncounted when it closes', async (t) => {
  const stub = await stubbornUpstream(t);
  const { outbound, admin } = await startSidecar(t, { config: () => ({ upstreams: { stub: { endpoints: [stub.url] } } }) });
  const { socket, head } = await rawUpgrade(Number(new URL(outbound).port), 'stub');
  t.is(parseHead(head).status, 101);
  t.is(await metricValue(admin, TUNNELS_OPEN), 1);
  const upstreams = (await (await request(`${admin}/upstreams`)).body.json()) as { upstreams: { name: string; tunnels: number }[] };
  t.is(upstreams.upstreams.find((u) => u.name === 'stub')?.tunnels, 1);
  const upstreamSide = await stub.accepted();
  const upstreamEnded = once(upstreamSide, 'end');
  socket.resetAndDestroy();
  await upstreamEnded; // meshlet closes the upstream side as it uncounts the tunnel
  t.is(await metricValue(admin, TUNNELS_OPEN), 0);
});

test('a tunnel half-closed by the client is torn down after tunnelHalfCloseTimeout', async (t) => {
  const stub = await stubbornUpstream(t);
  const { outbound, admin } = await startSidecar(t, {
    config: () => ({ outbound: { limits: { tunnelHalfCloseTimeout: '200ms' } }, upstreams: { stub: { endpoints: [stub.url] } } }),
  });
  const { socket } = await rawUpgrade(Number(new URL(outbound).port), 'stub');
  await stub.accepted();
  const clientClosed = once(socket, 'close');
  const started = performance.now();
  socket.end(); // FIN; the stub never finishes its side, so meshlet's client side stays open until the linger
  await clientClosed;
  const elapsed = performance.now() - started;
  t.true(elapsed >= 150, `torn down after ${elapsed} ms, before the linger`);
  t.is(await metricValue(admin, TUNNELS_OPEN), 0);
});

test('upgrades over limits.maxTunnels get 503 overloaded', async (t) => {
  const stub = await stubbornUpstream(t);
  const { outbound } = await startSidecar(t, {
    config: () => ({ outbound: { limits: { maxTunnels: 1 } }, upstreams: { stub: { endpoints: [stub.url] } } }),
  });
  const port = Number(new URL(outbound).port);
  const first = await rawUpgrade(port, 'stub');
  t.teardown(() => first.socket.destroy());
  t.is(parseHead(first.head).status, 101);
  const second = await rawUpgrade(port, 'stub');
  t.teardown(() => second.socket.destroy());
  const answer = parseHead(second.head);
  t.is(answer.status, 503);
  t.is(answer.headers['x-meshlet-error'], 'overloaded');
});

function drainEnv(primary: string, stub: string): Record<string, string> {
  return {
    MESHLET__SERVICE__NAME: 'drain',
    MESHLET__SERVICE__DRAINTIMEOUT: '1s',
    MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__INBOUND__PRIMARY: primary,
    MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
    MESHLET__UPSTREAMS__STUB__ENDPOINTS: `[${stub}]`,
  };
}

test('SIGTERM with a WebSocket open: the client gets close 1001 at the drain timeout and meshlet exits 0', async (t) => {
  const upstream = await startUpstream(t);
  const wss = new WebSocketServer({ server: upstream.server });
  t.teardown(() => wss.close());
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], drainEnv(upstream.url, upstream.url));
  const inbound = await meshlet.listening('inbound');
  const client = new WebSocket(`ws://${inbound}/ws`);
  client.on('error', () => {});
  await once(client, 'open');
  const closed = once(client, 'close');
  const started = performance.now();
  meshlet.child.kill('SIGTERM');
  const [code] = (await closed) as [number];
  t.is(code, 1001);
  t.is(await meshlet.exit, 0);
  const elapsed = performance.now() - started;
  t.true(elapsed >= 900, `the tunnel was closed after ${elapsed} ms, before the drain timeout`);
  t.true(elapsed < 4000, `exit took ${elapsed} ms`);
});

test('SIGTERM with a half-closed tunnel whose upstream never finishes: meshlet exits 0', async (t) => {
  const upstream = await startUpstream(t);
  const stub = await stubbornUpstream(t);
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], {
    ...drainEnv(upstream.url, stub.url),
    MESHLET__OUTBOUND__LIMITS__TUNNELHALFCLOSETIMEOUT: '1h',
  });
  const outbound = await meshlet.listening('outbound');
  const { socket } = await rawUpgrade(Number(outbound.split(':').pop()), 'stub');
  const upstreamSide = await stub.accepted();
  socket.end();
  await once(upstreamSide, 'end'); // the FIN went through; the stub keeps its side open
  const started = performance.now();
  meshlet.child.kill('SIGTERM');
  t.is(await meshlet.exit, 0);
  t.true(performance.now() - started < 4000);
});
