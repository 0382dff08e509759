/**
 * Upgrades other than the listener's allowed types are ordinary requests; an upgrade the upstream
 * refuses is relayed; `OPTIONS *` and HTTP/2's preface get meshlet's own answers. Each is logged and
 * counted like any request.
 */
import test from 'ava';
import type { Socket } from 'node:net';
import { WEBSOCKET_HANDSHAKE, parseHead, rawExchange } from './helpers/raw.ts';
import { withSidecar, type Fixture } from './helpers/with-sidecar.ts';

function port(url: string): number {
  return Number(new URL(url).port);
}

async function accessLine(fixture: Fixture, match: (line: Record<string, unknown>) => boolean) {
  return fixture.logs.next((l) => l.type === 'access' && match(l));
}

test('an h2c upgrade (curl --http2) is answered as HTTP/1.1, without Upgrade or what Connection names', withSidecar, {}, async (t, fixture) => {
  const answer = parseHead(
    await rawExchange(
      port(fixture.inbound),
      'GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n',
      { end: false }, // a half-close would count as the client going away
    ),
  );
  t.is(answer.status, 200);
  t.is(answer.body, 'ok');
  const got = await fixture.upstream.received('/x');
  t.is(got.headers.upgrade, undefined);
  t.is(got.headers['http2-settings'], undefined);
  t.not(got.headers.connection?.toLowerCase(), 'upgrade');
  t.like(await accessLine(fixture, (l) => l.path === '/x'), { status: 200, upstream: 'primary' });
});

test('Upgrade: foo is proxied as an ordinary request through outbound, its headers stripped', withSidecar, {}, async (t, fixture) => {
  const answer = parseHead(
    await rawExchange(port(fixture.outbound), 'GET /foo HTTP/1.1\r\nHost: echo\r\nConnection: upgrade, x-secret\r\nUpgrade: foo\r\nX-Secret: 1\r\nConnection: close\r\n\r\n', { end: false }),
  );
  t.is(answer.status, 200);
  const got = await fixture.upstream.received('/foo');
  t.is(got.headers.upgrade, undefined);
  t.is(got.headers['x-secret'], undefined);
  t.like(await accessLine(fixture, (l) => l.path === '/foo'), { status: 200, upstream: 'echo' });
  t.regex(await fixture.sidecar.metrics.registry.metrics(), /meshlet_requests_total\{direction="outbound",upstream="echo",method="GET",code="200"/);
});

test('a WebSocket upgrade the primary refuses (401) reaches the client, logged and counted with its status', withSidecar, {}, async (t, fixture) => {
  fixture.upstream.server.on('upgrade', (_req, socket: Socket) => {
    socket.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 6\r\n\r\nno way');
  });
  const answer = parseHead(
    await rawExchange(
      port(fixture.inbound),
      `GET /ws HTTP/1.1\r\nHost: a\r\n${WEBSOCKET_HANDSHAKE}\r\n`,
      { end: false },
    ),
  );
  t.is(answer.status, 401);
  t.is(answer.headers['www-authenticate'], 'Bearer');
  t.is(answer.body, 'no way');
  t.like(await accessLine(fixture, (l) => l.path === '/ws'), { status: 401, upstream: 'primary' });
  t.regex(await fixture.sidecar.metrics.registry.metrics(), /meshlet_requests_total\{direction="inbound",upstream="primary",method="GET",code="401"/);
});

test('OPTIONS * is answered by meshlet with Allow; * with another method is 400; neither is an upstream failure', withSidecar, {}, async (t, fixture) => {
  const options = parseHead(await rawExchange(port(fixture.inbound), 'OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'));
  t.is(options.status, 200);
  t.regex(options.headers.allow ?? '', /GET, HEAD, POST/);
  t.regex(options.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
  const star = parseHead(await rawExchange(port(fixture.outbound), 'GET * HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n'));
  t.is(star.status, 400);
  t.is(star.headers['x-meshlet-error'], 'bad_request');
  t.like(await accessLine(fixture, (l) => l.method === 'OPTIONS'), { status: 200, path: '*' });
  t.is(fixture.upstream.requests.length, 0);
  t.notRegex(await fixture.sidecar.metrics.registry.metrics(), /upstream_reset/);
});

test('HTTP/2 prior knowledge (PRI * HTTP/2.0) gets a clean 400 that says so, with a request id', withSidecar, {}, async (t, fixture) => {
  const answer = parseHead(await rawExchange(port(fixture.inbound), 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'));
  t.is(answer.status, 400);
  t.regex(answer.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
  t.regex((JSON.parse(answer.body) as { error: { message: string } }).error.message, /HTTP\/2 is not spoken on this port/);
  t.like(await accessLine(fixture, (l) => l.status === 400), { error: 'bad_request' });
});

test('upgradeTypes: [] tunnels nothing: a WebSocket upgrade becomes an ordinary request', withSidecar, {
  config: () => ({ inbound: { upgradeTypes: [] } }),
}, async (t, fixture) => {
  const answer = parseHead(
    await rawExchange(
      port(fixture.inbound),
      `GET /t HTTP/1.1\r\nHost: a\r\n${WEBSOCKET_HANDSHAKE}Connection: close\r\n\r\n`,
      { end: false },
    ),
  );
  t.is(answer.status, 200);
  t.is((await fixture.upstream.received('/t')).headers.upgrade, undefined);
});

test('upgradeTypes other than websocket are refused by validation, saying why', async (t) => {
  const { parseConfig } = await import('../src/config/load.ts');
  const loaded = parseConfig({ service: { name: 'x' }, outbound: { upgradeTypes: ['h2c'] } });
  t.false(loaded.ok);
  if (!loaded.ok) t.regex(loaded.problems.join('\n'), /outbound\.upgradeTypes\.0: only websocket can be tunnelled/);
});

test('an upgrade the primary never answers gets 504 upstream_timeout after the first-byte timeout', withSidecar, {
  config: () => ({ inbound: { timeouts: { firstByte: '200ms' } } }),
}, async (t, fixture) => {
  // Holds the socket and says nothing; closes once meshlet has given up and closed its side.
  fixture.upstream.server.on('upgrade', (_req, socket: Socket) => socket.on('end', () => socket.destroy()));
  const answer = parseHead(
    await rawExchange(
      port(fixture.inbound),
      `GET /hang HTTP/1.1\r\nHost: a\r\n${WEBSOCKET_HANDSHAKE}\r\n`,
      { end: false },
    ),
  );
  t.is(answer.status, 504);
  t.is(answer.headers['x-meshlet-error'], 'upstream_timeout');
  t.like(await accessLine(fixture, (l) => l.path === '/hang'), { status: 504, error: 'upstream_timeout' });
});
