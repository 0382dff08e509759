/**
 * The seed corpus: valid, malformed and smuggling requests, each a template filled per case, so that
 * every request carries a request id that names its case (`fz-<case>-<n>`) and every request
 * *smuggled inside another* carries one that says so (`smuggled-<case>-<n>`). If the primary ever
 * receives a smuggled id that meshlet did not log as a request of its own, a request hid inside
 * another one's bytes.
 *
 * Aimed at the places where proxies have gone wrong: framing (CL/TE, chunk sizes, extensions,
 * trailers, line endings), upgrades (websocket, h2c, unknown), CONNECT, `OPTIONS *`, the HTTP/2
 * preface, HTTP/1.0 keep-alive, Expect: 100-continue, heads near the 16 KiB limit, absolute-form,
 * hop-by-hop tricks and pipelining.
 */
import { createHash } from 'node:crypto';

/** What a template needs to know about the case it is built for. */
export type CaseContext = {
  /** The Host to name: anything inbound; a configured, oddly spelled or unknown upstream outbound. */
  host: string;
  /** A fresh id for a request meant to be seen as a request. */
  id: () => string;
  /** A fresh id for a request that must only ever travel as another request's body. */
  smuggledId: () => string;
};

export type CorpusEntry = {
  name: string;
  build: (ctx: CaseContext) => string;
  /**
   * Statuses the first answer may have when the entry is sent unmutated to a known route. Forwarded
   * requests may also get 502, because the recording primary sometimes resets on purpose.
   */
  expect?: readonly number[];
};

const FORWARDED = [200, 502] as const;
const REFUSED = [400] as const;

/** A request that, if the primary ever sees it as a request, was smuggled. */
const inner = (ctx: CaseContext): string => `GET /smuggled HTTP/1.1\r\nHost: ${ctx.host}\r\nX-Request-Id: ${ctx.smuggledId()}\r\n\r\n`;

/** A syntactically valid Sec-WebSocket-Key (16 random bytes, base64), fixed per case by the id. */
const wsKey = (seed: string): string => createHash('sha1').update(seed).digest().subarray(0, 16).toString('base64');

const get = (ctx: CaseContext, path = '/get'): string => `GET ${path} HTTP/1.1\r\nHost: ${ctx.host}\r\nX-Request-Id: ${ctx.id()}\r\n\r\n`;

function chunked(ctx: CaseContext, body: string, extra = ''): string {
  return `POST /chunked HTTP/1.1\r\nHost: ${ctx.host}\r\nX-Request-Id: ${ctx.id()}\r\nTransfer-Encoding: chunked\r\n${extra}\r\n${body}`;
}

export const CORPUS: readonly CorpusEntry[] = [
  // --- valid ---
  { name: 'GET', build: (c) => get(c), expect: FORWARDED },
  { name: 'GET with query', build: (c) => get(c, '/q?token=secret&x=%20y'), expect: FORWARDED },
  { name: 'HEAD', build: (c) => `HEAD /head HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: FORWARDED },
  {
    name: 'POST Content-Length',
    build: (c) => `POST /post HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world`,
    expect: FORWARDED,
  },
  { name: 'chunked', build: (c) => chunked(c, '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'), expect: FORWARDED },
  { name: 'chunked with extensions', build: (c) => chunked(c, '5;name=value\r\nhello\r\n1;ext="q"\r\n!\r\n0;last\r\n\r\n'), expect: FORWARDED },
  { name: 'chunked with trailers', build: (c) => chunked(c, '5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n', 'Trailer: X-Checksum\r\n'), expect: FORWARDED },
  { name: 'chunked, upper-case hex', build: (c) => chunked(c, `A\r\n${'x'.repeat(10)}\r\n0\r\n\r\n`), expect: FORWARDED },
  { name: 'HTTP/1.0 without Host', build: (c) => `GET /ten HTTP/1.0\r\nX-Request-Id: ${c.id()}\r\n\r\n` },
  { name: 'HTTP/1.0 keep-alive', build: (c) => `GET /ten HTTP/1.0\r\nHost: ${c.host}\r\nConnection: keep-alive\r\nX-Request-Id: ${c.id()}\r\n\r\n${get(c)}`, expect: FORWARDED },
  {
    name: 'Expect: 100-continue',
    build: (c) => `POST /expect HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody`,
    expect: [100, ...FORWARDED],
  },
  { name: 'absolute-form', build: (c) => `GET http://${c.host}/abs?q=1 HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: FORWARDED },
  { name: 'absolute-form, other Host', build: (c) => `GET http://${c.host}/abs HTTP/1.1\r\nHost: elsewhere\r\nX-Request-Id: ${c.id()}\r\n\r\n` },
  { name: 'absolute-form with userinfo', build: (c) => `GET http://user:pw@${c.host}:80/abs HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n\r\n` },
  { name: 'absolute-form https', build: (c) => `GET https://${c.host}/abs HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: REFUSED },
  { name: 'pipelined GETs', build: (c) => get(c, '/p1') + get(c, '/p2') + get(c, '/p3'), expect: FORWARDED },
  {
    name: 'pipelined POST then GET',
    build: (c) => `POST /p HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nContent-Length: 3\r\n\r\nabc${get(c)}`,
    expect: FORWARDED,
  },
  { name: 'Connection: close', build: (c) => `GET /close HTTP/1.1\r\nHost: ${c.host}\r\nConnection: close\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: FORWARDED },
  { name: 'no request id', build: (c) => `GET /anonymous HTTP/1.1\r\nHost: ${c.host}\r\n\r\n`, expect: FORWARDED },
  { name: 'two request ids', build: (c) => `GET /ids HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: FORWARDED },
  {
    name: 'head near 16 KiB',
    build: (c) => `GET /big HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nX-Big: ${'b'.repeat(16 * 1024 - 160)}\r\n\r\n`,
  },
  { name: 'head over 16 KiB', build: (c) => `GET /big HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nX-Big: ${'b'.repeat(17 * 1024)}\r\n\r\n`, expect: [431] },
  { name: 'many headers', build: (c) => `GET /many HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n${'X-H: v\r\n'.repeat(300)}\r\n` },
  // --- special request targets and methods ---
  { name: 'OPTIONS *', build: (c) => `OPTIONS * HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n\r\n` },
  { name: 'HTTP/2 preface', build: () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00' },
  { name: 'HTTP/0.9', build: () => 'GET /\r\n' },
  { name: 'CONNECT then HTTP inside', build: (c) => `CONNECT ${c.host}:80 HTTP/1.1\r\nHost: ${c.host}:80\r\nX-Request-Id: ${c.id()}\r\n\r\n${inner(c)}` },
  { name: 'unknown method', build: (c) => `BREW /pot HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n\r\n` },
  { name: 'lower-case method', build: (c) => `get /lower HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: REFUSED },
  // --- upgrades ---
  {
    name: 'websocket upgrade',
    build: (c) => {
      const id = c.id();
      // After the handshake, one masked text frame ("hi"), as a client sends it.
      const frame = '\x81\x82\x01\x02\x03\x04' + String.fromCharCode(0x68 ^ 1, 0x69 ^ 2);
      return `GET /ws HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${id}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${wsKey(id)}\r\nSec-WebSocket-Version: 13\r\n\r\n${frame}`;
    },
  },
  {
    name: 'h2c upgrade',
    build: (c) => `GET /h2c HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n`,
  },
  { name: 'unknown upgrade', build: (c) => `GET /foo HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nConnection: upgrade\r\nUpgrade: foo/2\r\n\r\n${inner(c)}` },
  // --- smuggling and ambiguity: all must be refused, and nothing forwarded ---
  { name: 'CL.TE', build: (c) => `POST /s HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${inner(c)}`, expect: REFUSED },
  {
    name: 'TE.CL',
    build: (c) => {
      const body = inner(c);
      return `POST /s HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    },
    expect: REFUSED,
  },
  { name: 'TE twice', build: (c) => chunked(c, `0\r\n\r\n${inner(c)}`, 'Transfer-Encoding: chunked\r\n') },
  { name: 'TE: chunked, chunked', build: (c) => `POST /s HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n${inner(c)}`, expect: REFUSED },
  { name: 'TE: xchunked', build: (c) => `POST /s HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${inner(c)}`, expect: REFUSED },
  { name: 'TE with tab', build: (c) => `POST /s HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n${inner(c)}` },
  { name: 'TE obs-fold', build: (c) => `POST /s HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${inner(c)}`, expect: REFUSED },
  { name: 'TE space before colon', build: (c) => `POST /s HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${inner(c)}`, expect: REFUSED },
  { name: 'TE in HTTP/1.0', build: (c) => `POST /s HTTP/1.0\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${inner(c)}`, expect: REFUSED },
  { name: 'duplicate Content-Length', build: (c) => `POST /s HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nContent-Length: 0\r\nContent-Length: 80\r\n\r\n${inner(c)}`, expect: REFUSED },
  { name: 'Content-Length list', build: (c) => `POST /s HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nContent-Length: 0, 80\r\n\r\n${inner(c)}`, expect: REFUSED },
  { name: 'Content-Length +0', build: (c) => `POST /s HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nContent-Length: +0\r\n\r\n${inner(c)}`, expect: REFUSED },
  {
    name: 'Connection: content-length',
    // Hop-by-hop by nomination: a proxy that drops the nominated Content-Length must not then send the
    // body in a way the primary reads as a second request.
    build: (c) => {
      const body = inner(c);
      return `POST /hop HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nConnection: Content-Length\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    },
  },
  {
    name: 'Connection: transfer-encoding',
    build: (c) => {
      const body = inner(c);
      return chunked(c, `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`, 'Connection: Transfer-Encoding\r\n');
    },
  },
  { name: 'duplicate Host', build: (c) => `GET /s HTTP/1.1\r\nHost: ${c.host}\r\nHost: other\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: REFUSED },
  { name: 'missing Host', build: (c) => `GET /s HTTP/1.1\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: REFUSED },
  { name: 'bare LF line endings', build: (c) => `GET /lf HTTP/1.1\nHost: ${c.host}\nX-Request-Id: ${c.id()}\n\n` },
  { name: 'bare CR in a header', build: (c) => `GET /cr HTTP/1.1\r\nHost: ${c.host}\r\nX-A: a\rX-Request-Id: ${c.smuggledId()}\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: REFUSED },
  { name: 'NUL in a header value', build: (c) => `GET /nul HTTP/1.1\r\nHost: ${c.host}\r\nX-A: a\x00b\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: REFUSED },
  { name: 'chunk size overflow', build: (c) => chunked(c, `ffffffffffffffff1\r\n${inner(c)}\r\n0\r\n\r\n`), expect: REFUSED },
  { name: 'chunk with LF only', build: (c) => chunked(c, `5\nhello\n0\n\n${inner(c)}`) },
  { name: 'chunk data longer than size', build: (c) => chunked(c, `2\r\nhello\r\n0\r\n\r\n${inner(c)}`) },
  {
    name: 'GET with a body hiding a request',
    build: (c) => {
      const body = inner(c);
      return `GET /b HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    },
    expect: FORWARDED,
  },
  // RFC 9112 §3 lets a recipient split the request line on any whitespace; Node's parser does.
  { name: 'request line with two spaces', build: (c) => `GET  /two HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n\r\n` },
  { name: 'space in the target', build: (c) => `GET /a b HTTP/1.1\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n\r\n`, expect: REFUSED },
  { name: 'HTTP/1.2', build: (c) => `GET /v HTTP/1.2\r\nHost: ${c.host}\r\nX-Request-Id: ${c.id()}\r\n\r\n` },
];

/** A request that must be answered 200 by the primary through either listener. */
export const WELL_FORMED = (host: string, id: string): string => `GET /well-formed HTTP/1.1\r\nHost: ${host}\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n`;
