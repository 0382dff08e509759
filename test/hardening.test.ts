import test from 'ava';
import { connect } from 'node:net';
import { request } from 'undici';
import { withSidecar } from './helpers/with-sidecar.ts';
import type { Sidecar } from '../src/sidecar.ts';
import { parseHead, rawExchange } from './helpers/raw.ts';

const SMUGGLING: Record<string, string> = {
  'Content-Length with Transfer-Encoding':
    'POST /smuggle HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'duplicate Content-Length': 'POST /smuggle HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde',
  'identical duplicate Content-Length': 'POST /smuggle HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd',
  'bad chunk size': 'POST /smuggle HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n',
  'obs-fold header': 'GET /smuggle HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n',
  'Transfer-Encoding other than chunked': 'POST /smuggle HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
  'duplicate Host': 'GET /smuggle HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
  'missing Host in HTTP/1.1': 'GET /smuggle HTTP/1.1\r\n\r\n',
  'Transfer-Encoding in HTTP/1.0': 'POST /smuggle HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'space before colon': 'POST /smuggle HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
};

for (const [name, raw] of Object.entries(SMUGGLING)) {
  test(`${name}: 400 bad_request and nothing reaches the primary`, withSidecar, {}, async (t, { inbound, upstream, sidecar }) => {
    const answer = parseHead(await rawExchange(Number(new URL(inbound).port), raw));
    t.is(answer.status, 400);
    t.is(answer.headers['x-meshlet-error'], 'bad_request');
    t.is(answer.headers['content-type'], 'application/json');
    t.is((JSON.parse(answer.body) as { error: { code: string } }).error.code, 'bad_request');
    t.is(answer.headers.connection, 'close');
    // A well-formed request sent afterwards is forwarded after anything the bad one could have caused.
    t.is((await request(`${inbound}/after`)).statusCode, 200);
    t.deepEqual(upstream.requests.map((r) => r.url).filter((url) => url !== '/healthz'), ['/after']);
    t.regex(await metricsText(sidecar), /meshlet_local_replies_total\{[^}]*reason="bad_request"[^}]*\} 1/);
  });
}

test('request headers over the limit get 431 header_too_large', withSidecar, { config: () => ({ inbound: { limits: { maxHeaderBytes: '8KiB' } } }) }, async (t, { inbound, upstream }) => {
  const raw = `GET /big HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`;
  const answer = parseHead(await rawExchange(Number(new URL(inbound).port), raw));
  t.is(answer.status, 431);
  t.is(answer.headers['x-meshlet-error'], 'header_too_large');
  t.is(upstream.requests.filter((r) => r.url === '/big').length, 0);
});

test('a client that sends its headers too slowly is cut off (slowloris)', withSidecar, { config: () => ({ inbound: { limits: { headersTimeout: '300ms' } } }) }, async (t, { inbound }) => {
  const started = performance.now();
  const socket = connect(Number(new URL(inbound).port), '127.0.0.1');
  socket.on('error', () => {});
  socket.write('GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ');
  // Keep trickling bytes, as slowloris does; the deadline is for the whole head.
  const trickle = setInterval(() => socket.writable && socket.write('a'), 50);
  await new Promise((resolve) => socket.on('close', resolve));
  clearInterval(trickle);
  const elapsed = performance.now() - started;
  t.true(elapsed >= 250, `closed after ${elapsed}ms`);
  t.true(elapsed < 3000, `closed after ${elapsed}ms`);
});

function metricsText(sidecar: Sidecar): Promise<string> {
  return sidecar.metrics.registry.metrics();
}
