/**
 * One slow client must not lock every other caller out: per-source shares of the request slots, and a
 * minimum upload rate that cuts trickling bodies, while honest slow uploads and paused token streams
 * go through.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { parseHead } from './helpers/raw.ts';
import { withSidecar } from './helpers/with-sidecar.ts';

/** Read the whole body, answering with its size and hash once it is in. */
function consumeBody(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  const hash = createHash('sha256');
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    hash.update(chunk);
  });
  req.on('end', () => res.end(`${size} ${hash.digest('hex')}`));
  req.on('error', () => {});
}

/**
 * A POST whose body trickles in: `bytes` every `everyMs`, from `localAddress`. Resolves with the raw
 * answer (or '' when the connection was cut) once the server has answered or closed.
 */
function trickle(port: number, options: { bytes: number; everyMs: number; localAddress: string; total: number }): Promise<string> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ port, host: '127.0.0.1', localAddress: options.localAddress });
    let answer = '';
    let sent = 0;
    let timer: NodeJS.Timeout | null = null;
    socket.on('connect', () => {
      socket.write(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${options.total}\r\n\r\n`);
      timer = setInterval(() => {
        if (sent >= options.total || socket.destroyed) return;
        socket.write(Buffer.alloc(Math.min(options.bytes, options.total - sent), 97));
        sent += options.bytes;
      }, options.everyMs);
    });
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (timer !== null) clearInterval(timer);
      resolve(answer);
    });
    // Bounded: whatever happens, this client gives up after 10 s.
    setTimeout(() => socket.destroy(), 10_000).unref();
  });
}

test('hundreds of slow uploads from one address: another address is served throughout; the slow ones get 429 or 408', withSidecar, {
  upstream: (req, res) => (req.method === 'POST' ? consumeBody(req, res) : res.end('ok')),
  config: () => ({
    inbound: { limits: { maxConcurrentRequests: 100, maxSourceShare: 0.5, minUploadRate: { grace: '1s', bytesPerSecond: 500 } } },
  }),
}, async (t, { inbound, sidecar }) => {
  const port = Number(new URL(inbound).port);
  const attack = Array.from({ length: 300 }, () => trickle(port, { bytes: 5, everyMs: 200, total: 100_000, localAddress: '127.0.0.1' }));
  // The other caller, from 127.0.0.2, for as long as the attack lasts (bounded: 400 requests).
  const victim = new Agent({ localAddress: '127.0.0.2', connections: 2 });
  t.teardown(() => victim.close());
  const statuses: number[] = [];
  let attacking = true;
  void Promise.all(attack).then(() => (attacking = false));
  for (let i = 0; i < 400 && attacking; i++) {
    const res = await request(`${inbound}/work`, { dispatcher: victim });
    statuses.push(res.statusCode);
    await res.body.text();
  }
  const answers = (await Promise.all(attack)).map((raw) => parseHead(raw));
  t.true(statuses.length >= 20, `${statuses.length} requests from the other caller`);
  t.deepEqual([...new Set(statuses)], [200], 'every request from the other address succeeded');
  const codes = answers.map((a) => a.headers['x-meshlet-error']);
  t.is(codes.filter((c) => c === 'source_limited').length, 250, 'beyond its share of 50, each got 429 at once');
  t.is(codes.filter((c) => c === 'request_timeout').length, 50, 'the 50 admitted were cut for trickling');
  t.true(answers.filter((a) => a.headers['x-meshlet-error'] === 'source_limited').every((a) => a.status === 429 && a.headers['retry-after'] === '1'));
  t.true(answers.filter((a) => a.headers['x-meshlet-error'] === 'request_timeout').every((a) => a.status === 408));
  const metrics = await sidecar.metrics.registry.metrics();
  t.regex(metrics, /meshlet_local_replies_total\{direction="inbound",upstream="primary",reason="source_limited"[^}]*\} 250/);
  t.regex(metrics, /meshlet_local_replies_total\{direction="inbound",upstream="primary",reason="request_timeout"[^}]*\} 50/);
  t.regex(metrics, /meshlet_upstream_attempts_total\{direction="inbound",upstream="primary",outcome="client-slow"[^}]*\} 50/);
});

test('an honest slow upload (60 KiB at 20 KiB/s) is not cut', withSidecar, {
  upstream: consumeBody,
  config: () => ({ inbound: { limits: { minUploadRate: { grace: '1s', bytesPerSecond: 500 } } } }),
}, async (t, { inbound }) => {
  const chunk = Buffer.alloc(2048, 7);
  const body = Readable.from((async function* () {
    for (let i = 0; i < 30; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100)); // 2 KiB every 100 ms: the client's pace
      yield chunk;
    }
  })());
  const res = await request(`${inbound}/upload`, { method: 'POST', body, headers: { 'content-length': String(30 * 2048) } });
  t.is(res.statusCode, 200);
  const expected = createHash('sha256').update(Buffer.concat(Array.from({ length: 30 }, () => chunk))).digest('hex');
  t.is(await res.body.text(), `${30 * 2048} ${expected}`);
});

test('a token stream that pauses longer than the upload grace is not cut: the rate is for request bodies only', withSidecar, {
  upstream: (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: thinking\n\n');
    setTimeout(() => res.end('data: done\n\n'), 2_500);
  },
  config: () => ({ inbound: { limits: { minUploadRate: { grace: '500ms', bytesPerSecond: 500 } } } }),
}, async (t, { inbound }) => {
  const res = await request(`${inbound}/stream`, { method: 'POST', body: 'prompt' });
  t.is(res.statusCode, 200);
  t.is(await res.body.text(), 'data: thinking\n\ndata: done\n\n');
});

test('the outbound listener has no per-source share by default: its one client is the primary', withSidecar, {
  upstream: (_req, res) => setTimeout(() => res.end('ok'), 200),
  config: () => ({ outbound: { limits: { maxConcurrentRequests: 10 } } }),
}, async (t, { outbound }) => {
  const statuses = await Promise.all(
    Array.from({ length: 10 }, () => request(`${outbound}/x`, { headers: { host: 'echo' } }).then(async (r) => (await r.body.text(), r.statusCode))),
  );
  t.deepEqual([...new Set(statuses)], [200]);
});
