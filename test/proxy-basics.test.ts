import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { RequestIds } from '../src/proxy/headers.ts';
import { startUpstream } from './helpers/servers.ts';
import { startSidecar, withSidecar } from './helpers/with-sidecar.ts';

const body = randomBytes(8 * 1024 * 1024);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

test('inbound forwards method, path and query to the primary', withSidecar, {}, async (t, { inbound, upstream }) => {
  const res = await request(`${inbound}/hello?x=1`, { method: 'DELETE' });
  t.is(res.statusCode, 200);
  t.is(await res.body.text(), 'ok');
  const seen = upstream.requests.find((r) => r.url === '/hello?x=1');
  t.is(seen?.method, 'DELETE');
});

test(
  'a multi-megabyte POST arrives intact both ways (hash compared)',
  withSidecar,
  {
    upstream: (req, res) => {
      const hash = createHash('sha256');
      req.on('data', (chunk: Buffer) => hash.update(chunk));
      req.on('end', () => {
        res.setHeader('x-body-sha256', hash.digest('hex'));
        res.end(body);
      });
    },
  },
  async (t, { inbound }) => {
    const res = await request(`${inbound}/upload`, { method: 'POST', body });
    t.is(res.statusCode, 200);
    t.is(res.headers['x-body-sha256'], sha256(body));
    t.is(sha256(Buffer.from(await res.body.arrayBuffer())), sha256(body));
  },
);

test('a chunked upload of unknown length streams through', withSidecar, {
  upstream: (req, res) => {
    const hash = createHash('sha256');
    req.on('data', (chunk: Buffer) => hash.update(chunk));
    req.on('end', () => res.end(`${req.headers['transfer-encoding']} ${hash.digest('hex')}`));
  },
}, async (t, { inbound }) => {
  async function* parts() {
    for (let i = 0; i < 8; i++) yield body.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024);
  }
  const res = await request(`${inbound}/stream-up`, { method: 'POST', body: Readable.from(parts()) });
  t.is(await res.body.text(), `chunked ${sha256(body)}`);
});

test('SSE events reach the client one by one, not at the end', async (t) => {
  const received = [0, 1, 2].map(() => Promise.withResolvers<void>());
  // The upstream writes the next event only after the client has received the previous one.
  const { inbound } = await startSidecar(t, {
    upstream: async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      for (let i = 0; i < 3; i++) {
        res.write(`data: token-${i}\n\n`);
        await received[i]!.promise;
      }
      res.end();
    },
  });
  const res = await request(`${inbound}/events`, { headers: { accept: 'text/event-stream' } });
  t.is(res.headers['content-type'], 'text/event-stream');
  const seen: string[] = [];
  for await (const chunk of res.body) {
    // Each event must arrive while the upstream is still waiting for us: if meshlet buffered,
    // the upstream would never send event 1 and this test would time out.
    for (const event of String(chunk).split('\n\n').filter(Boolean)) {
      seen.push(event);
      received[seen.length - 1]?.resolve();
    }
  }
  t.deepEqual(seen, ['data: token-0', 'data: token-1', 'data: token-2']);
});

test('a client that goes away cancels the upstream request at once', withSidecar, {
  upstream: () => {
    /* never answers */
  },
}, async (t, { inbound, upstream, logs }) => {
  const controller = new AbortController();
  const pending = request(`${inbound}/slow`, { signal: controller.signal }).catch((error: Error) => error);
  const upstreamRequest = await upstream.received('/slow');
  upstreamRequest.on('error', () => {}); // 'aborted', expected
  const closed = new Promise((resolve) => upstreamRequest.on('close', resolve));
  controller.abort();
  await pending;
  await closed;
  t.true(upstreamRequest.destroyed);
  const line = await logs.next((l) => l.type === 'access' && l.path === '/slow');
  t.is(line.status, 499);
  t.true(line.clientGone);
});

test('a client that half-closes before its answer counts as gone: the upstream request is cancelled', withSidecar, {
  upstream: () => {
    /* never answers */
  },
}, async (t, { inbound, upstream, logs }) => {
  const socket = connect(Number(new URL(inbound).port), '127.0.0.1');
  socket.write('GET /half HTTP/1.1\r\nHost: a\r\n\r\n');
  const upstreamRequest = await upstream.received('/half');
  upstreamRequest.on('error', () => {}); // 'aborted', expected
  const closed = new Promise((resolve) => upstreamRequest.on('close', resolve));
  socket.end(); // FIN: nothing more to send
  socket.resume();
  await closed;
  t.true(upstreamRequest.destroyed);
  const line = await logs.next((l) => l.type === 'access' && l.path === '/half');
  t.is(line.status, 499);
  t.true(line.clientGone);
  socket.destroy();
});

test('hop-by-hop headers are stripped both ways', withSidecar, {
  upstream: (req, res) => {
    res.writeHead(200, { connection: 'x-upstream-hop', 'x-upstream-hop': 'secret', 'keep-alive': 'timeout=99', 'x-kept': 'yes' });
    res.end(JSON.stringify(req.headers));
  },
}, async (t, { inbound }) => {
  const answer = await rawGet(inbound, '/hop', {
    connection: 'keep-alive, x-client-hop',
    'x-client-hop': 'drop me',
    'keep-alive': 'timeout=5',
    te: 'trailers',
    'proxy-authorization': 'Basic abc',
    'x-end-to-end': 'keep me',
  });
  const seen = JSON.parse(answer.body) as Record<string, string>;
  t.is(seen['x-end-to-end'], 'keep me');
  for (const name of ['x-client-hop', 'keep-alive', 'te', 'proxy-authorization']) t.is(seen[name], undefined, name);
  t.is(answer.headers['x-kept'], 'yes');
  t.is(answer.headers['x-upstream-hop'], undefined);
  t.not(answer.headers['keep-alive'], 'timeout=99'); // Node may add its own for this hop
});

test('X-Forwarded-* are set by meshlet and client values are not trusted', withSidecar, {
  upstream: (req, res) => res.end(JSON.stringify(req.headers)),
}, async (t, { inbound, upstream }) => {
  const answer = await rawGet(inbound, '/xff', {
    host: 'planner.example:15006',
    'x-forwarded-for': '6.6.6.6',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'evil.example',
  });
  const seen = JSON.parse(answer.body) as Record<string, string>;
  t.is(seen['x-forwarded-for'], '127.0.0.1');
  t.is(seen['x-forwarded-proto'], 'http');
  t.is(seen['x-forwarded-host'], 'planner.example:15006');
  t.is(seen.host, new URL(upstream.url).host); // the primary's own authority
});

test('trusted X-Forwarded-For is appended to', withSidecar, {
  upstream: (req, res) => res.end(JSON.stringify(req.headers)),
  config: () => ({ inbound: { trustForwardedHeaders: true } }),
}, async (t, { inbound }) => {
  const answer = await rawGet(inbound, '/xff', { 'x-forwarded-for': '10.1.2.3', 'x-forwarded-proto': 'https' });
  const seen = JSON.parse(answer.body) as Record<string, string>;
  t.is(seen['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
  t.is(seen['x-forwarded-proto'], 'https');
});

test('Host is rewritten to the endpoint the request goes to', withSidecar, {
  upstream: (req, res) => res.end(req.headers.host),
}, async (t, { outbound, upstream }) => {
  const answer = await rawGet(outbound, '/host', { host: 'echo' });
  t.is(answer.body, `127.0.0.1:${upstream.port}`);
});

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('x-request-id is generated when absent, kept when present, and returned', withSidecar, {
  upstream: (req, res) => res.end(String(req.headers['x-request-id'])),
}, async (t, { inbound }) => {
  const generated = await request(`${inbound}/id`);
  const id = await generated.body.text();
  t.regex(id, UUID_V4);
  t.is(generated.headers['x-request-id'], id);
  const second = await (await request(`${inbound}/id`)).body.text();
  t.regex(second, UUID_V4);
  t.not(second, id);
  const kept = await request(`${inbound}/id`, { headers: { 'x-request-id': 'abc-123' } });
  t.is(await kept.body.text(), 'abc-123');
  t.is(kept.headers['x-request-id'], 'abc-123');
});

test('outbound routes by Host, port ignored, case-insensitive', withSidecar, {
  upstream: (req, res) => res.end(`echo saw ${req.url}`),
}, async (t, { outbound }) => {
  const answer = await rawGet(outbound, '/by-host?q=1', { host: 'Echo:8080' });
  t.is(answer.status, 200);
  t.is(answer.body, 'echo saw /by-host?q=1');
});

test('outbound routes absolute-form requests (HTTP_PROXY clients)', withSidecar, {
  upstream: (req, res) => res.end(`echo saw ${req.url}`),
}, async (t, { outbound }) => {
  const answer = await rawGet(outbound, 'http://echo/absolute?q=2', { host: 'ignored' });
  t.is(answer.status, 200);
  t.is(answer.body, 'echo saw /absolute?q=2');
});

test('inbound hands absolute-form requests to the primary in origin-form; other schemes get 400', withSidecar, {
  upstream: (req, res) => res.end(`primary saw ${req.url}`),
}, async (t, { inbound, upstream }) => {
  const answer = await rawGet(inbound, 'http://elsewhere.example/admin?q=1', {});
  t.is(answer.status, 200);
  t.is(answer.body, 'primary saw /admin?q=1');

  const refused = await rawGet(inbound, 'ftp://elsewhere.example/admin', {});
  t.is(refused.status, 400);
  t.is(refused.headers['x-meshlet-error'], 'bad_request');
  t.deepEqual(upstream.requests.map((req) => req.url), ['/admin?q=1']);
});

test('outbound round-robins over several endpoints with loadBalancer.policy round-robin', async (t) => {
  const second = await startUpstream(t, (_req, res) => res.end('second'));
  const { outbound } = await startSidecar(t, {
    upstream: (_req, res) => res.end('first'),
    config: (first) => ({ upstreams: { pair: { endpoints: [first.url, second.url], loadBalancer: { policy: 'round-robin' } } } }),
  });
  const answers: string[] = [];
  for (let i = 0; i < 4; i++) answers.push((await rawGet(outbound, '/', { host: 'pair' })).body);
  t.deepEqual(answers.sort(), ['first', 'first', 'second', 'second']);
});

test('an unknown upstream name gets 404 unknown_upstream', withSidecar, {}, async (t, { outbound }) => {
  const answer = await rawGet(outbound, '/x', { host: 'nobody' });
  t.is(answer.status, 404);
  t.is(answer.headers['x-meshlet-error'], 'unknown_upstream');
  t.is(answer.headers['content-type'], 'application/json');
  const reply = JSON.parse(answer.body) as { error: { code: string; message: string; requestId: string } };
  t.is(reply.error.code, 'unknown_upstream');
  t.regex(reply.error.message, /nobody/);
  t.is(reply.error.requestId, String(answer.headers['x-request-id']));
});

/** A GET with exactly these headers (undici would add its own). */
export function rawGet(base: string, path: string, headers: Record<string, string>) {
  const url = new URL(base);
  return new Promise<{ status: number; headers: IncomingMessage['headers']; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers, setHost: !('host' in headers), agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('Expect: 100-continue is answered by meshlet and the body forwarded', withSidecar, {
  upstream: (req, res) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => (size += chunk.length));
    req.on('end', () => res.end(`${req.headers.expect ?? 'no-expect'} ${size}`));
  },
}, async (t, { inbound }) => {
  const url = new URL(inbound);
  const answer = await new Promise<{ status: number; body: string; sawContinue: boolean }>((resolve, reject) => {
    let sawContinue = false;
    const req = httpRequest({ host: url.hostname, port: url.port, path: '/upload', method: 'POST', headers: { expect: '100-continue', 'content-length': 5 } });
    req.on('continue', () => {
      sawContinue = true;
      req.end('hello');
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sawContinue }));
    });
    req.on('error', reject);
    req.flushHeaders();
  });
  t.true(answer.sawContinue);
  t.is(answer.status, 200);
  t.is(answer.body, 'no-expect 5');
});

test('generated request ids are UUID-shaped and never repeat, across listeners too', (t) => {
  const first = new RequestIds();
  const second = new RequestIds();
  const ids: string[] = [];
  for (let i = 0; i < 10_000; i++) ids.push(first.next(), second.next());
  t.deepEqual(ids.filter((id) => !UUID_V4.test(id)), []);
  t.is(new Set(ids).size, ids.length);
});

test('when the counter runs out, a new random prefix keeps request ids unique', (t) => {
  const ids = new RequestIds();
  const first = ids.next();
  (ids as unknown as { counter: number }).counter = 2 ** 30 - 1;
  const last = ids.next();
  const after = ids.next();
  t.is(last.slice(0, 28), first.slice(0, 28));
  t.is(last.slice(28), '3fffffff');
  t.not(after.slice(0, 28), first.slice(0, 28));
  t.regex(after, UUID_V4);
});

test("idle upstream connections are kept as long as the server's Keep-Alive hint allows (less 2 s), 4 s without one", async (t) => {
  // Three servers, one request each, then another after a pause: the second reuses the first's
  // connection only while meshlet still keeps it (an agent's calls often come more than 4 s apart).
  const server = async (keepAliveMs: number) => {
    const ports = new Set<number | undefined>();
    const upstream = await startUpstream(t, (req, res) => {
      ports.add(req.socket.remotePort);
      res.end('ok');
    });
    upstream.server.keepAliveTimeout = keepAliveMs;
    return { url: upstream.url, ports };
  };
  const minute = await server(60_000); // Keep-Alive: timeout=60: kept 58 s
  const short = await server(3_000); // Keep-Alive: timeout=3: kept 1 s
  const silent = await server(0); // no hint: meshlet's own 4 s
  const { outbound } = await startSidecar(t, {
    config: () => ({ upstreams: { minute: { endpoints: [minute.url] }, short: { endpoints: [short.url] }, silent: { endpoints: [silent.url] } } }),
  });
  const call = async (host: string) => {
    const res = await request(`${outbound}/x`, { headers: { host } });
    await res.body.text();
    t.is(res.statusCode, 200);
  };
  await Promise.all([
    call('minute').then(() => sleep(4_500)).then(() => call('minute')),
    call('short').then(() => sleep(2_500)).then(() => call('short')),
    call('silent').then(() => sleep(4_500)).then(() => call('silent')),
  ]);
  t.is(minute.ports.size, 1, 'a server keeping connections a minute: the same connection after 4.5 s');
  t.is(short.ports.size, 2, "a server keeping them 3 s (4 with Node 24's buffer): a new connection after 2.5 s");
  t.is(silent.ports.size, 2, 'a server saying nothing: a new connection after 4.5 s');
});
