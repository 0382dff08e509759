import test from 'ava';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from 'ws';
import { closedPort } from './helpers/servers.ts';
import { startSidecar } from './helpers/with-sidecar.ts';
import { WEBSOCKET_HANDSHAKE, parseHead, rawExchange } from './helpers/raw.ts';

async function echoSidecar(t: import('ava').ExecutionContext) {
  const fixture = await startSidecar(t);
  const wss = new WebSocketServer({ server: fixture.upstream.server });
  t.teardown(() => wss.close());
  const serverSockets: WebSocket[] = [];
  wss.on('connection', (socket, req) => {
    serverSockets.push(socket);
    socket.on('message', (data) => socket.send(`echo:${String(data)}`));
    socket.send(`hello ${req.headers['x-forwarded-for']} ${req.headers['x-request-id'] ? 'with-id' : 'no-id'}`);
  });
  return { ...fixture, serverSockets, wss };
}

function nextMessage(socket: WebSocket): Promise<string> {
  return once(socket, 'message').then(([data]) => String(data));
}

test('WebSocket upgrades are tunnelled both ways through inbound', async (t) => {
  const { inbound, sidecar } = await echoSidecar(t);
  const client = new WebSocket(`${inbound.replace('http', 'ws')}/ws`);
  const greeting = nextMessage(client);
  await once(client, 'open');
  t.is(await greeting, 'hello 127.0.0.1 with-id');
  const echo = nextMessage(client);
  client.send('ping');
  t.is(await echo, 'echo:ping');
  client.close();
  t.regex(await sidecar.metrics.registry.metrics(), /meshlet_requests_total\{direction="inbound",upstream="primary",method="GET",code="101"[^}]*\} 1/);
});

test('WebSocket through outbound by Host name', async (t) => {
  const { outbound } = await echoSidecar(t);
  const client = new WebSocket(`${outbound.replace('http', 'ws')}/ws`, { headers: { host: 'echo' } });
  const greeting = nextMessage(client);
  await once(client, 'open');
  t.regex(await greeting, /^hello /);
  client.close();
});

test('closing the client closes the upstream socket', async (t) => {
  const { inbound, serverSockets, wss } = await echoSidecar(t);
  const client = new WebSocket(`${inbound.replace('http', 'ws')}/ws`);
  const [server] = (await once(wss, 'connection')) as [WebSocket];
  await once(client, 'open');
  const serverClosed = once(server, 'close');
  client.close(1000, 'done');
  const [code, reason] = (await serverClosed) as [number, Buffer];
  t.is(code, 1000);
  t.is(String(reason), 'done');
  t.is(serverSockets.length, 1);
});

test('closing the upstream closes the client socket', async (t) => {
  const { inbound, wss } = await echoSidecar(t);
  const client = new WebSocket(`${inbound.replace('http', 'ws')}/ws`);
  const [server] = (await once(wss, 'connection')) as [WebSocket];
  await once(client, 'open');
  const clientClosed = once(client, 'close');
  server.close(4001, 'bye');
  const [code] = (await clientClosed) as [number];
  t.is(code, 4001);
});

test('an upstream that dies abruptly takes the client connection with it', async (t) => {
  const { inbound, wss } = await echoSidecar(t);
  const client = new WebSocket(`${inbound.replace('http', 'ws')}/ws`);
  client.on('error', () => {});
  const [server] = (await once(wss, 'connection')) as [WebSocket];
  await once(client, 'open');
  const clientClosed = once(client, 'close');
  server.terminate();
  const [code] = (await clientClosed) as [number];
  t.is(code, 1006); // abnormal closure: no close frame, the connection just ended
});

test('a WebSocket upgrade to an unknown upstream gets 404 unknown_upstream', async (t) => {
  const { outbound } = await startSidecar(t);
  const port = Number(new URL(outbound).port);
  const answer = parseHead(
    await rawExchange(port, `GET /ws HTTP/1.1\r\nHost: nobody\r\n${WEBSOCKET_HANDSHAKE}\r\n`),
  );
  t.is(answer.status, 404);
  t.is(answer.headers['x-meshlet-error'], 'unknown_upstream');
});

test('a WebSocket upgrade to an unreachable primary gets 502 upstream_unreachable', async (t) => {
  const port = await closedPort();
  const { inbound, sidecar } = await startSidecar(t, { waitReady: false, config: () => ({ inbound: { primary: `http://127.0.0.1:${port}` } }) });
  const answer = parseHead(
    await rawExchange(Number(new URL(inbound).port), `GET /ws HTTP/1.1\r\nHost: a\r\n${WEBSOCKET_HANDSHAKE}\r\n`),
  );
  t.is(answer.status, 502);
  t.is(answer.headers['x-meshlet-error'], 'upstream_unreachable');
  t.regex(await sidecar.metrics.registry.metrics(), /meshlet_local_replies_total\{direction="inbound",upstream="primary",reason="upstream_unreachable"/);
});
