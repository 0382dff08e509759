/**
 * A sidecar must never die because of a peer: resets at every point of the exchanges that skip the
 * ordinary request path (CONNECT and the tunnels it opens, parser errors, upgrades), against the real CLI in a child process.
 */
import test from 'ava';
import { connect } from 'node:net';
import { request } from 'undici';
import { startUpstream } from './helpers/servers.ts';
import { spawnMeshlet } from './helpers/process.ts';
import { parseHead, rawExchange } from './helpers/raw.ts';

function env(primary: string): Record<string, string> {
  return {
    MESHLET__SERVICE__NAME: 'resets',
    MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__INBOUND__PRIMARY: primary,
    MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
  };
}

/** Send `text`, then reset the connection (RST, not FIN) once the first answer byte arrives or at once. */
function sendThenReset(port: number, text: string, when: 'at-once' | 'after-answer'): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(text);
      if (when === 'at-once') socket.resetAndDestroy();
    });
    socket.once('data', () => socket.resetAndDestroy());
    socket.on('error', () => {});
    socket.on('close', () => resolve());
  });
}

const RESET_AFTER: Record<string, string> = {
  CONNECT: 'CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n',
  'a CONNECT to a known name': 'CONNECT researcher:80 HTTP/1.1\r\nHost: researcher:80\r\n\r\n',
  'a request inside a tunnel': 'CONNECT researcher:80 HTTP/1.1\r\nHost: researcher:80\r\n\r\nGET / HTTP/1.1\r\nHost: researcher\r\n\r\n',
  'a malformed head': 'GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n',
  'a smuggling attempt': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'an upgrade to nowhere': 'GET / HTTP/1.1\r\nHost: nowhere\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
};

test('resets right after CONNECT, inside a tunnel, after a malformed head or a refused upgrade never kill the process', async (t) => {
  const upstream = await startUpstream(t);
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], env(upstream.url));
  const ports = [await meshlet.listening('inbound'), await meshlet.listening('outbound')].map((a) => Number(a.split(':').pop()));
  let died = false;
  void meshlet.exit.then(() => (died = true));
  for (let round = 0; round < 25; round++) {
    for (const port of ports) {
      for (const text of Object.values(RESET_AFTER)) {
        await Promise.all([sendThenReset(port, text, 'at-once'), sendThenReset(port, text, 'after-answer')]);
      }
    }
  }
  t.false(died, 'meshlet exited');
  const res = await request(`http://127.0.0.1:${ports[0]}/still-alive`);
  t.is(res.statusCode, 200);
  t.is(await res.body.text(), 'ok');
});

test('the CONNECT refusal carries a request id', async (t) => {
  const upstream = await startUpstream(t);
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], env(upstream.url));
  const port = Number((await meshlet.listening('inbound')).split(':').pop());
  const answer = parseHead(await rawExchange(port, 'CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n'));
  t.is(answer.status, 400);
  t.regex(answer.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
  t.is((JSON.parse(answer.body) as { error: { requestId: string } }).error.requestId, answer.headers['x-request-id'] ?? 'missing');
});
