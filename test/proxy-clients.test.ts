/**
 * The HTTP clients agents are written with, on their defaults, through the outbound listener: undici's
 * ProxyAgent and EnvHttpProxyAgent and Node's fetch with HTTP_PROXY tunnel with CONNECT even for
 * http:// URLs, and meshlet serves the HTTP inside the tunnel through the same pipeline.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { EnvHttpProxyAgent, fetch, ProxyAgent, request } from 'undici';
import { parseHead, rawExchange, WEBSOCKET_HANDSHAKE } from './helpers/raw.ts';
import { withSidecar, type Fixture } from './helpers/with-sidecar.ts';

const run = promisify(execFile);

/** What the upstream saw, minus what differs between any two requests. */
function seenHeaders(fixture: Fixture, url: string): Record<string, unknown> {
  const seen = fixture.upstream.requests.find((r) => r.url === url);
  if (seen === undefined) throw new Error(`the upstream never saw ${url}`);
  const { 'x-request-id': _id, ...rest } = seen.headers;
  return rest;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

test('undici ProxyAgent on its defaults reaches a named upstream, which sees what a plain request gets', withSidecar, {}, async (t, fixture) => {
  const plain = await request(`${fixture.outbound}/plain`, { headers: { host: 'echo', 'x-mine': '1' } });
  t.is(plain.statusCode, 200);
  await plain.body.text();
  // undici 8 sends http:// URLs in absolute-form; undici 7 (inside Node 24's fetch) tunnels them.
  for (const proxyTunnel of [undefined, true]) {
    const dispatcher = new ProxyAgent(proxyTunnel === undefined ? fixture.outbound : { uri: fixture.outbound, proxyTunnel });
    t.teardown(() => dispatcher.close());
    const path = `/tunnel-${String(proxyTunnel)}`;
    const res = await request(`http://echo${path}`, { dispatcher, headers: { 'x-mine': '1' } });
    t.is(res.statusCode, 200);
    t.is(await res.body.text(), 'ok');
    t.deepEqual(seenHeaders(fixture, path), seenHeaders(fixture, '/plain'));
  }
  // The CONNECT and the request inside it are each recorded, under the upstream's name.
  const connect = await fixture.logs.next((l) => l.type === 'access' && l.method === 'CONNECT');
  t.like(connect, { upstream: 'echo', status: 200, path: 'echo:80' });
  const inside = await fixture.logs.next((l) => l.type === 'access' && l.path === '/tunnel-true');
  t.like(inside, { upstream: 'echo', status: 200, method: 'GET' });
});

test('undici EnvHttpProxyAgent reaches named upstreams, tunnelling or not', withSidecar, {}, async (t, fixture) => {
  for (const proxyTunnel of [false, true]) {
    const dispatcher = new EnvHttpProxyAgent({ httpProxy: fixture.outbound, noProxy: '', proxyTunnel });
    t.teardown(() => dispatcher.close());
    for (const path of ['/a', '/b']) {
      const res = await fetch(`http://echo${path}`, { dispatcher });
      t.is(res.status, 200);
      t.is(await res.text(), 'ok');
    }
  }
  t.deepEqual(fixture.upstream.requests.map((r) => r.url), ['/a', '/b', '/a', '/b']);
  const metrics = await (await request(`${fixture.admin}/metrics`)).body.text();
  t.regex(metrics, /meshlet_requests_total\{direction="outbound",upstream="echo",method="GET",code="200"[^}]*\} 4/);
  // The tunnelling agent opened a tunnel (or two: undici may connect again before the first is idle).
  t.regex(metrics, /meshlet_requests_total\{direction="outbound",upstream="echo",method="CONNECT",code="200"[^}]*\} [12]\n/);
});

test("Node's own fetch with HTTP_PROXY (NODE_USE_ENV_PROXY) reaches a named upstream", withSidecar, {}, async (t, fixture) => {
  const script = "const r = await fetch('http://echo/from-node'); console.log(r.status, await r.text());";
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, NODE_USE_ENV_PROXY: '1', HTTP_PROXY: fixture.outbound, NO_PROXY: '' },
  });
  t.is(stdout.trim(), '200 ok');
  t.truthy(fixture.upstream.requests.find((r) => r.url === '/from-node'));
});

test('inside a tunnel, the tunnel names the upstream: a different Host is not a way out', withSidecar, {}, async (t, fixture) => {
  const answer = await rawExchange(
    portOf(fixture.outbound),
    'CONNECT echo:80 HTTP/1.1\r\nHost: echo:80\r\n\r\nGET /inside HTTP/1.1\r\nHost: elsewhere\r\nConnection: close\r\n\r\n',
    { end: false },
  );
  t.true(answer.startsWith('HTTP/1.1 200 Connection Established\r\n\r\n'));
  const inner = parseHead(answer.slice(answer.indexOf('\r\n\r\n') + 4));
  t.is(inner.status, 200);
  t.is(inner.body, 'ok');
  t.is(fixture.upstream.requests.find((r) => r.url === '/inside')?.headers['x-forwarded-host'], 'elsewhere');
});

test('CONNECT to a name that is neither configured nor registered is unknown_upstream, and nothing is tunnelled', withSidecar, {}, async (t, fixture) => {
  const answer = parseHead(await rawExchange(portOf(fixture.outbound), 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'));
  t.is(answer.status, 404);
  t.is(answer.headers['x-meshlet-error'], 'unknown_upstream');
  t.is(answer.headers.connection, 'close');
  t.is((JSON.parse(answer.body) as { error: { message: string } }).error.message, 'no upstream called "example.com" is configured or registered');
});

test('CONNECT passes the Host rules, and the inbound listener refuses it', withSidecar, {}, async (t, fixture) => {
  const twoHosts = parseHead(await rawExchange(portOf(fixture.outbound), 'CONNECT echo:80 HTTP/1.1\r\nHost: echo:80\r\nHost: other:80\r\n\r\n'));
  t.is(twoHosts.status, 400);
  t.regex(twoHosts.body, /more than one Host header/);
  const inbound = parseHead(await rawExchange(portOf(fixture.inbound), 'CONNECT echo:80 HTTP/1.1\r\nHost: echo:80\r\n\r\n'));
  t.is(inbound.status, 400);
  t.regex(inbound.body, /CONNECT is not supported on the inbound listener/);
  t.is(fixture.upstream.requests.length, 0);
});

test('a WebSocket upgrade inside a CONNECT tunnel is tunnelled to the upstream', withSidecar, {}, async (t, fixture) => {
  const answer = await rawExchange(
    portOf(fixture.outbound),
    `CONNECT echo:80 HTTP/1.1\r\nHost: echo:80\r\n\r\nGET /ws HTTP/1.1\r\nHost: echo\r\n${WEBSOCKET_HANDSHAKE}\r\n`,
    { end: false },
  );
  const inner = parseHead(answer.slice(answer.indexOf('\r\n\r\n') + 4));
  // The test upstream does not speak WebSocket: its plain answer is relayed, and the request reached it.
  t.is(inner.status, 200);
  t.is(fixture.upstream.requests.find((r) => r.url === '/ws')?.headers.upgrade, 'websocket');
});

/** Debian's python3, where .ci/run installs python3-requests and python3-httpx. */
const PYTHON = '/usr/bin/python3';

test('Python requests and httpx reach a named upstream through HTTP_PROXY, and by Host', withSidecar, {}, async (t, fixture) => {
  const script = [
    'import os, requests, httpx',
    "print(requests.get('http://echo/requests').text)",
    "print(httpx.get('http://echo/httpx').text)",
    "print(requests.get(os.environ['OUTBOUND'] + '/by-host', headers={'Host': 'echo'}, proxies={'http': None}).text)",
  ].join('\n');
  const { stdout } = await run(PYTHON, ['-c', script], {
    env: { ...process.env, HTTP_PROXY: fixture.outbound, http_proxy: fixture.outbound, NO_PROXY: '', OUTBOUND: fixture.outbound },
  });
  t.is(stdout, 'ok\nok\nok\n');
  t.deepEqual(fixture.upstream.requests.map((r) => r.url), ['/requests', '/httpx', '/by-host']);
});

test('curl reaches a named upstream with -x (absolute-form) and with -p (CONNECT)', withSidecar, {}, async (t, fixture) => {
  const plain = await run('curl', ['-sS', '-x', fixture.outbound, 'http://echo/curl-x']);
  t.is(plain.stdout, 'ok');
  const tunnelled = await run('curl', ['-sS', '-p', '-x', fixture.outbound, 'http://echo/curl-p']);
  t.is(tunnelled.stdout, 'ok');
  t.deepEqual(fixture.upstream.requests.map((r) => r.url), ['/curl-x', '/curl-p']);
});
