import test from 'ava';
import { Agent, request } from 'undici';
import { connect, createServer, type AddressInfo } from 'node:net';
import { blackholePort, closedPort } from './helpers/servers.ts';
import { startSidecar, withSidecar } from './helpers/with-sidecar.ts';

type Reply = { error: { code: string; message: string; upstream: string; requestId: string } };

async function expectLocalReply(t: import('ava').ExecutionContext, url: string, status: number, code: string, init?: Parameters<typeof request>[1]) {
  const res = await request(url, init);
  t.is(res.statusCode, status);
  t.is(res.headers['x-meshlet-error'], code);
  t.is(res.headers['content-type'], 'application/json');
  const reply = (await res.body.json()) as Reply;
  t.is(reply.error.code, code);
  return { res, reply };
}

test('primary refusing connections: 502 upstream_unreachable', async (t) => {
  const port = await closedPort();
  const { inbound } = await startSidecar(t, { waitReady: false, config: () => ({ inbound: { primary: `http://127.0.0.1:${port}` } }) });
  const { reply } = await expectLocalReply(t, `${inbound}/x`, 502, 'upstream_unreachable');
  t.is(reply.error.upstream, 'primary');
});

test('primary resetting the connection: 502 upstream_reset', withSidecar, {
  upstream: (req) => req.socket.destroy(),
}, async (t, { inbound, sidecar }) => {
  await expectLocalReply(t, `${inbound}/x`, 502, 'upstream_reset');
  const metrics = await sidecar.metrics.registry.metrics();
  t.regex(metrics, /meshlet_local_replies_total\{[^}]*reason="upstream_reset"[^}]*\} 1/);
  t.regex(metrics, /meshlet_requests_total\{direction="inbound",upstream="primary",method="GET",code="502"[^}]*\} 1/);
});

test('a primary whose response head is over 64 KiB: 502 upstream_reset, saying so; 60 KiB passes', withSidecar, {
  upstream: (req, res) => {
    res.setHeader('x-big', 'a'.repeat(req.url === '/huge' ? 70_000 : 60_000));
    res.end('big');
  },
}, async (t, { inbound }) => {
  const { reply } = await expectLocalReply(t, `${inbound}/huge`, 502, 'upstream_reset');
  t.is(reply.error.message, 'primary sent a response head over 64 KiB');
  const client = new Agent({ maxHeaderSize: 128 * 1024 }); // undici's own default is 16 KiB too
  t.teardown(() => client.close());
  const res = await request(`${inbound}/large`, { dispatcher: client });
  t.is(res.statusCode, 200);
  t.is(res.headers['x-big'], 'a'.repeat(60_000));
  t.is(await res.body.text(), 'big');
});

test('a primary answering malformed HTTP: 502 upstream_reset, saying what was wrong', async (t) => {
  const primary = createServer((socket) => socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nno colon here\r\n\r\n')));
  await new Promise<void>((resolve) => primary.listen(0, '127.0.0.1', resolve));
  t.teardown(() => primary.close());
  const { port } = primary.address() as AddressInfo;
  const { inbound } = await startSidecar(t, { waitReady: false, config: () => ({ inbound: { primary: `http://127.0.0.1:${port}` } }) });
  const { reply } = await expectLocalReply(t, `${inbound}/x`, 502, 'upstream_reset');
  t.regex(reply.error.message, /^primary sent a malformed response: .*Invalid header token/);
});

test('a head Node refuses to write (a control character in the reason phrase): 502 upstream_reset, and the next request is fine', async (t) => {
  // undici accepts the phrase; Node will not write it to the client. Relayed at its head (inbound) or
  // after a retry layer read it (outbound, 503 retried then given up): either way a 502, never a hang.
  const primary = createServer((socket) => socket.on('error', () => {}).on('data', (data) => {
    const path = data.toString('latin1').split(' ', 2)[1];
    if (path === '/bad') socket.write('HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok');
    else if (path === '/bad-503') socket.write('HTTP/1.1 503 B\x01D\r\nContent-Length: 2\r\n\r\nno');
    else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  }));
  await new Promise<void>((resolve) => primary.listen(0, '127.0.0.1', resolve));
  t.teardown(() => primary.close());
  const url = `http://127.0.0.1:${(primary.address() as AddressInfo).port}`;
  const { inbound, outbound, logs } = await startSidecar(t, {
    waitReady: false,
    config: () => ({
      inbound: { primary: url },
      upstreams: { odd: { endpoints: [url], retries: { maxRetries: 1, backoff: { base: '1ms', max: '1ms' } }, circuitBreaker: { enabled: false } } },
    }),
  });
  const { reply } = await expectLocalReply(t, `${inbound}/bad`, 502, 'upstream_reset');
  t.is(reply.error.message, 'primary sent a response head meshlet cannot relay: Invalid character in statusMessage');
  const line = await logs.next((l) => l.type === 'access' && l.path === '/bad');
  t.is(line.status, 502);
  const good = await request(`${inbound}/good`);
  t.is(good.statusCode, 200);
  t.is(good.statusText, 'OK');
  t.is(await good.body.text(), 'ok');
  await expectLocalReply(t, `${outbound}/bad`, 502, 'upstream_reset', { headers: { host: 'odd' } });
  await expectLocalReply(t, `${outbound}/bad-503`, 502, 'upstream_reset', { headers: { host: 'odd' } });
  const after = await request(`${outbound}/good`, { headers: { host: 'odd' } });
  t.is(after.statusCode, 200);
  t.is(await after.body.text(), 'ok');
});

test('primary hanging before its response head: 504 upstream_timeout after firstByte', withSidecar, {
  upstream: () => {},
  config: () => ({ inbound: { timeouts: { firstByte: '300ms' } } }),
}, async (t, { inbound }) => {
  const started = performance.now();
  await expectLocalReply(t, `${inbound}/hang`, 504, 'upstream_timeout');
  const elapsed = performance.now() - started;
  t.true(elapsed >= 250 && elapsed < 5000, `${elapsed}ms`);
});

test('total timeout: 504 upstream_timeout', withSidecar, {
  upstream: () => {},
  config: () => ({ inbound: { timeouts: { total: '200ms' } } }),
}, async (t, { inbound }) => {
  await expectLocalReply(t, `${inbound}/hang`, 504, 'upstream_timeout');
});

test('an upstream going idle mid-body cuts the client connection (never a clean truncated body)', withSidecar, {
  upstream: (_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('partial');
  },
  config: () => ({ inbound: { timeouts: { idle: '300ms' } } }),
}, async (t, { inbound, logs }) => {
  const res = await request(`${inbound}/stall`);
  t.is(res.statusCode, 200);
  await t.throwsAsync(res.body.text());
  const line = await logs.next((l) => l.type === 'access' && l.path === '/stall');
  t.is(line.error, 'upstream_timeout');
});

test('an upstream reset mid-stream aborts the client connection', withSidecar, {
  upstream: (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: one\n\n', () => setImmediate(() => req.socket.destroy()));
  },
}, async (t, { inbound }) => {
  const res = await request(`${inbound}/events`);
  t.is(res.statusCode, 200);
  const error = await t.throwsAsync(res.body.text());
  t.truthy(error);
});

test('over the concurrency limit: 503 overloaded with Retry-After', withSidecar, {
  upstream: (req, res) => {
    if (req.url === '/hold') return; // held until teardown
    res.end('ok');
  },
  config: () => ({ inbound: { limits: { maxConcurrentRequests: 1 } } }),
}, async (t, { inbound, upstream }) => {
  const held = request(`${inbound}/hold`).catch(() => undefined);
  await upstream.received('/hold');
  const { res } = await expectLocalReply(t, `${inbound}/second`, 503, 'overloaded');
  t.is(res.headers['retry-after'], '1');
  upstream.server.closeAllConnections();
  await held;
  // Every slot comes back, whether its request failed (the reset above, a refused one) or succeeded.
  for (let i = 0; i < 3; i++) {
    const after = await request(`${inbound}/after-${i}`);
    t.is(after.statusCode, 200);
    await after.body.text();
  }
});

test('a configured upstream with no endpoints: 503 no_healthy_endpoints', withSidecar, {
  config: () => ({ upstreams: { lonely: {} } }),
}, async (t, { outbound }) => {
  await expectLocalReply(t, `${outbound}/x`, 503, 'no_healthy_endpoints', { headers: { host: 'lonely' } });
});

test('a client that stalls mid-upload is cut after the idle timeout, and the upstream request cancelled', withSidecar, {
  upstream: (req) => req.resume(), // reads the body, never answers
  config: () => ({ inbound: { timeouts: { idle: '300ms' } } }),
}, async (t, { inbound, upstream, logs }) => {
  const socket = connect(Number(new URL(inbound).port), '127.0.0.1');
  socket.on('error', () => {});
  // The idle clock starts at the client's last byte, so elapsed time is measured from the write.
  const started = performance.now();
  socket.write('POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789');
  const upstreamRequest = await upstream.received('/upload');
  upstreamRequest.on('error', () => {});
  await Promise.all([
    new Promise((resolve) => socket.on('close', resolve)),
    new Promise((resolve) => upstreamRequest.on('close', resolve)),
  ]);
  const elapsed = performance.now() - started;
  t.true(elapsed >= 280 && elapsed < 3000, `${elapsed}ms`);
  const line = await logs.next((l) => l.type === 'access' && l.path === '/upload');
  t.is(line.status, 499);
});

test('an upstream that never completes the TCP handshake: 504 upstream_timeout after connect', async (t) => {
  const port = await blackholePort(t);
  const { outbound } = await startSidecar(t, {
    config: () => ({ upstreams: { void: { endpoints: [`http://127.0.0.1:${port}`], timeouts: { connect: '300ms' } } } }),
  });
  const started = performance.now();
  const { reply } = await expectLocalReply(t, `${outbound}/x`, 504, 'upstream_timeout', { headers: { host: 'void' } });
  const elapsed = performance.now() - started;
  t.regex(reply.error.message, /connect/);
  t.true(elapsed >= 250 && elapsed < 3000, `${elapsed}ms`);
});
