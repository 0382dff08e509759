/**
 * The request path's two levels, seen from outside: a layer reads the response head before anything
 * is committed to the client; each attempt has one outcome; every request, upgrade and refusal is
 * recorded once; a bug is a 500, never the upstream's fault; the total deadline runs on the clock.
 */
import test from 'ava';
import { once } from 'node:events';
import { request } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { MeshletError } from '../src/core/errors.ts';
import type { Attempt } from '../src/core/attempt.ts';
import type { Layer } from '../src/core/stage.ts';
import { closedPort } from './helpers/servers.ts';
import { parseHead, rawExchange } from './helpers/raw.ts';
import { startSidecar, withFakeClock, withSidecar, type Fixture } from './helpers/with-sidecar.ts';

/** A layer that answers 503 heads itself: the upstream's own 503 never reaches the client. */
const replaceUnavailable: Layer = (next) => async (attempt) => {
  const answered = await next(attempt);
  if (answered.status !== 503) return answered;
  answered.discard();
  throw new MeshletError('circuit_open', 'replaced by a layer that saw the 503 first', { retryAfter: 7 });
};

test('a layer sees the response status before the client does, and can answer instead', withSidecar, {
  upstream: (req, res) => {
    res.writeHead(req.url === '/busy' ? 503 : 200, { 'x-from': 'upstream' });
    res.end(req.url === '/busy' ? 'upstream body' : 'fine');
  },
  sidecar: { extraLayers: () => [replaceUnavailable] },
}, async (t, { outbound }) => {
  const busy = await request(`${outbound}/busy`, { headers: { host: 'echo' } });
  t.is(busy.statusCode, 503);
  t.is(busy.headers['x-meshlet-error'], 'circuit_open');
  t.is(busy.headers['retry-after'], '7');
  t.is(busy.headers['x-from'], undefined);
  t.regex(await busy.body.text(), /replaced by a layer/);
  const fine = await request(`${outbound}/fine`, { headers: { host: 'echo' } });
  t.is(fine.headers['x-from'], 'upstream');
  t.is(await fine.body.text(), 'fine');
});

/**
 * Every outcome the echo upstream's attempts come to, as `outcome:label[:retryable]`, and a promise of
 * the first `count` of them.
 */
function recordOutcomes(fixture: Fixture, count = 0): { seen: string[]; all: Promise<string[]> } {
  const seen: string[] = [];
  const all = Promise.withResolvers<string[]>();
  fixture.sidecar.upstreams.get('echo')!.onOutcome((a: Attempt) => {
    seen.push(`${a.outcome}:${a.label}${a.retryable ? ':retryable' : ''}`);
    if (seen.length === count) all.resolve(seen);
  });
  return { seen, all: all.promise };
}

test('each attempt has one outcome: success, failure statuses, resets, timeouts, broken streams, departed clients', withSidecar, {
  upstream: (req, res) => {
    if (req.url === '/ok') res.end('ok');
    else if (req.url === '/503') res.writeHead(503).end();
    else if (req.url === '/500') res.writeHead(500).end();
    else if (req.url === '/404') res.writeHead(404).end();
    else if (req.url === '/reset') req.socket.destroy();
    else if (req.url === '/broken') {
      res.writeHead(200);
      res.write('partial');
      setTimeout(() => req.socket.destroy(), 20);
    } else if (req.url === '/slow' || req.url === '/leave') {
      // never answers: /slow times out, /leave is abandoned by its client
    }
  },
  // One attempt per request: retries have tests of their own (retries.test.ts).
  config: () => ({ upstreams: { echo: { timeouts: { firstByte: '300ms' }, retries: { maxRetries: 0 } } } }),
}, async (t, fixture) => {
  const outcomes = recordOutcomes(fixture, 8);
  const get = (path: string) => request(`${fixture.outbound}${path}`, { headers: { host: 'echo' } }).then(async (res) => {
    await res.body.text().catch(() => '');
    return res.statusCode;
  }, () => 0);
  t.is(await get('/ok'), 200);
  t.is(await get('/503'), 503);
  t.is(await get('/500'), 500);
  t.is(await get('/404'), 404);
  t.is(await get('/reset'), 502);
  t.is(await get('/broken'), 200);
  t.is(await get('/slow'), 504);
  const controller = new AbortController();
  const leaving = request(`${fixture.outbound}/leave`, { headers: { host: 'echo' }, signal: controller.signal }).catch(() => null);
  await fixture.upstream.received('/leave');
  controller.abort();
  await leaving;
  t.deepEqual(await outcomes.all, [
    'success:success',
    'failure:503:retryable',
    'failure:500',
    'success:success', // a 404 is the upstream working as it should
    'failure:reset:retryable',
    'failure:reset:retryable', // the stream broke after it started
    'failure:timeout',
    'ignored:client-gone',
  ]);
  const metrics = await fixture.sidecar.metrics.registry.metrics();
  t.regex(metrics, /meshlet_upstream_attempts_total\{direction="outbound",upstream="echo",outcome="success"[^}]*\} 2/);
  t.regex(metrics, /meshlet_upstream_attempts_total\{direction="outbound",upstream="echo",outcome="reset"[^}]*\} 2/);
  // The access log carries the same outcome, for whoever rebuilds history from files.
  t.like(await fixture.logs.next((l) => l.type === 'access' && l.path === '/reset'), { status: 502, attempts: 1, outcome: 'reset' });
  t.like(await fixture.logs.next((l) => l.type === 'access' && l.path === '/503'), { status: 503, attempts: 1, outcome: '503' });
  t.like(await fixture.logs.next((l) => l.type === 'access' && l.path === '/leave'), { status: 499, attempts: 1, outcome: 'client-gone' });
});

test('an upstream refusing connections is a connect failure; no endpoint at all is a refusal that counts against nobody', async (t) => {
  const port = await closedPort();
  const fixture = await startSidecar(t, {
    config: () => ({ upstreams: { echo: { endpoints: [`http://127.0.0.1:${port}`], retries: { maxRetries: 0 } }, empty: {} } }),
  });
  const { seen } = recordOutcomes(fixture);
  const empty: string[] = [];
  fixture.sidecar.upstreams.get('empty')!.onOutcome((a) => empty.push(`${a.outcome}:${a.label}`));
  t.is((await request(`${fixture.outbound}/`, { headers: { host: 'echo' } })).statusCode, 502);
  t.is((await request(`${fixture.outbound}/`, { headers: { host: 'empty' } })).statusCode, 503);
  t.deepEqual(seen, ['failure:connect-failure:retryable']);
  t.deepEqual(empty, ['ignored:rejected']);
  const refused = await fixture.logs.next((l) => l.type === 'access' && l.upstream === 'empty');
  t.like(refused, { status: 503, outcome: 'rejected' });
  t.is(refused.attempts, undefined, 'no attempt was sent');
});

test('a bug on the request path is 500 internal, logged with its stack, and never blamed on the upstream', withSidecar, {
  sidecar: {
    extraLayers: () => [
      () => () => {
        throw new TypeError('a bug in a layer');
      },
    ],
  },
}, async (t, { outbound, logs, sidecar }) => {
  const res = await request(`${outbound}/x`, { headers: { host: 'echo' } });
  t.is(res.statusCode, 500);
  t.is(res.headers['x-meshlet-error'], 'internal');
  t.is(((await res.body.json()) as { error: { code: string } }).error.code, 'internal');
  const line = await logs.next((l) => l.msg === 'bug: unexpected error on the request path');
  t.regex(String((line.err as { stack: string }).stack), /TypeError: a bug in a layer\n\s+at /);
  const metrics = await sidecar.metrics.registry.metrics();
  t.regex(metrics, /meshlet_local_replies_total\{direction="outbound",upstream="echo",reason="internal"/);
  t.notRegex(metrics, /reason="upstream_reset"/);
});

test('a parser error, a CONNECT and an upgrade each get one access-log line and one metric record', withSidecar, {}, async (t, fixture) => {
  const { inbound, logs, sidecar } = fixture;
  const wss = new WebSocketServer({ server: fixture.upstream.server });
  t.teardown(() => wss.close());
  const port = Number(new URL(inbound).port);
  t.is(parseHead(await rawExchange(port, 'GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n')).status, 400);
  t.is(parseHead(await rawExchange(port, 'CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n')).status, 400);
  const client = new WebSocket(`${inbound.replace('http', 'ws')}/ws`);
  await once(client, 'open');
  client.close();
  await once(client, 'close');
  const lines = await Promise.all([400, 101].map((status) => logs.next((l) => l.type === 'access' && l.status === status && l.method !== 'CONNECT')));
  const connect = await logs.next((l) => l.type === 'access' && l.method === 'CONNECT');
  t.like(lines[0], { error: 'bad_request', upstream: 'unknown' });
  t.like(connect, { status: 400, error: 'bad_request' });
  t.like(lines[1], { method: 'GET', path: '/ws', upstream: 'primary' });
  t.is(logs.access().length, 3);
  const metrics = await sidecar.metrics.registry.metrics();
  t.regex(metrics, /meshlet_requests_total\{direction="inbound",upstream="primary",method="OTHER",code="400"[^}]*\} 1/);
  t.regex(metrics, /meshlet_requests_total\{direction="inbound",upstream="primary",method="CONNECT",code="400"[^}]*\} 1/);
  t.regex(metrics, /meshlet_requests_total\{direction="inbound",upstream="primary",method="GET",code="101"[^}]*\} 1/);
});

test('the total deadline runs on the runtime clock: 504 once it passes, and not before', withFakeClock, {
  upstream: () => {}, // never answers
  // No breaker: its window would be one more timer on the clock.
  config: () => ({ upstreams: { echo: { timeouts: { total: '10s' }, circuitBreaker: { enabled: false } } } }),
}, async (t, { outbound, upstream, clock }) => {
  const pending = request(`${outbound}/x`, { headers: { host: 'echo' } });
  await upstream.received('/x');
  clock.advance(9_999);
  t.is(clock.pending, 1, 'still waiting');
  clock.advance(1);
  const res = await pending;
  t.is(res.statusCode, 504);
  t.is(res.headers['x-meshlet-error'], 'upstream_timeout');
  t.is(clock.pending, 0);
});

test('the total deadline cuts a response already streaming: never a clean truncated body', withFakeClock, {
  upstream: (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: first\n\n');
  },
  config: () => ({ upstreams: { echo: { timeouts: { total: '1m' } } } }),
}, async (t, { outbound, clock }) => {
  const res = await request(`${outbound}/stream`, { headers: { host: 'echo' } });
  t.is(res.statusCode, 200);
  const chunks: string[] = [];
  const firstChunk = Promise.withResolvers<void>();
  const body = (async () => {
    for await (const chunk of res.body) {
      chunks.push(String(chunk));
      firstChunk.resolve();
    }
  })();
  await firstChunk.promise;
  clock.advance(60_000);
  await t.throwsAsync(body);
  t.deepEqual(chunks, ['data: first\n\n']);
});

test('a response held by a layer before relay arrives whole: early body bytes wait, undici pauses past a bound', withSidecar, {
  upstream: (_req, res) => {
    res.writeHead(200, { 'content-length': String(2 * 1024 * 1024) });
    for (let i = 0; i < 32; i++) res.write(Buffer.alloc(64 * 1024, i));
    res.end();
  },
  sidecar: {
    extraLayers: () => [
      (next) => async (attempt) => {
        const answered = await next(attempt);
        await new Promise((resolve) => setTimeout(resolve, 100)); // a layer that takes its time to decide
        return answered;
      },
    ],
  },
}, async (t, { outbound }) => {
  const res = await request(`${outbound}/big`, { headers: { host: 'echo' } });
  const body = Buffer.from(await res.body.arrayBuffer());
  t.is(body.length, 2 * 1024 * 1024);
  for (let i = 0; i < 32; i++) t.is(body[i * 64 * 1024 + 123], i);
});
