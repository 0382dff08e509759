import test from 'ava';
import { request } from 'undici';
import { IsoTime, putHundredths, putUint } from '../src/telemetry/access-log.ts';
import { parseHead, rawExchange } from './helpers/raw.ts';
import { withSidecar, type LogLine } from './helpers/with-sidecar.ts';

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const AT_MOST_TWO_DECIMALS = /^\d+(\.\d{1,2})?$/;

test('an access line carries every field of the exchange, in pino\'s shape', withSidecar, {
  upstream: (_req, res) => res.end('hello, agent'),
}, async (t, { inbound, upstream, logs }) => {
  const before = Date.now();
  const res = await request(`${inbound}/v1/tasks/7?token=secret`, { method: 'POST', body: 'x' });
  t.is(await res.body.text(), 'hello, agent');
  const line = await logs.next((l) => l.type === 'access' && l.path === '/v1/tasks/7');
  t.like(line, {
    level: 30,
    service: 'test-agent',
    msg: 'request',
    direction: 'inbound',
    upstream: 'primary',
    method: 'POST',
    status: 200,
    bytesSent: 'hello, agent'.length,
    requestId: res.headers['x-request-id'],
    endpoint: upstream.url,
    attempts: 1,
    outcome: 'success',
  });
  t.regex(String(line.time), ISO_TIME);
  const time = Date.parse(String(line.time));
  t.true(time >= before - 1 && time <= Date.now(), String(line.time));
  for (const field of ['durationMs', 'firstByteMs'] as const) {
    t.is(typeof line[field], 'number', field);
    t.regex(String(line[field]), AT_MOST_TWO_DECIMALS, field);
  }
  t.true((line.firstByteMs as number) <= (line.durationMs as number));
  t.false(JSON.stringify(logs.lines).includes('secret'), 'the query string is never logged');
});

test('paths that need JSON escapes are logged as valid JSON, exactly', withSidecar, {}, async (t, { inbound, logs }) => {
  // Characters Node's strict parser lets through in a request target that JSON must escape (quote,
  // backslash) or that are easy to get wrong. The raw client keeps its side open until answered: to
  // meshlet, as to Node, a client that half-closes has gone away.
  const path = '/say/"hi"\\there/{x}|^`';
  const answer = await rawExchange(Number(new URL(inbound).port), `GET ${path}?q="x\\y" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, { end: false });
  t.is(parseHead(answer).status, 200);
  const line = await logs.next((l) => l.type === 'access' && typeof l.path === 'string' && l.path.startsWith('/say/'));
  t.is(line.path, path);
  // A plain path, with a query that would need escapes: the query is cut either way.
  await (await request(`${inbound}/plain?token="secret"`)).body.text();
  t.is((await logs.next((l) => typeof l.path === 'string' && l.path.startsWith('/plain'))).path, '/plain');
});

test('many requests: one line each, in the order they finished, across batches', withSidecar, {}, async (t, { inbound, logs }) => {
  const count = 150; // more than two batches
  for (let i = 0; i < count; i++) {
    const res = await request(`${inbound}/seq/${i}`);
    await res.body.text();
  }
  await logs.next((l) => l.path === `/seq/${count - 1}`);
  const paths = logs.access().map((l: LogLine) => l.path).filter((p) => String(p).startsWith('/seq/'));
  t.deepEqual(paths, Array.from({ length: count }, (_, i) => `/seq/${i}`));
});

test('a lone request is logged within the flush interval, each time the log has gone idle', withSidecar, {}, async (t, { inbound, logs }) => {
  // Each line below can only leave by the flush timer (a batch is 64 lines), which must be re-armed
  // every time a batch starts after the previous one was written.
  for (let i = 0; i < 3; i++) {
    const started = Date.now();
    await (await request(`${inbound}/lone/${i}`)).body.text();
    await logs.next((l) => l.path === `/lone/${i}`);
    t.true(Date.now() - started < 2000);
  }
});

test('a path longer than the batch buffer is logged whole, between its neighbours', withSidecar, {
  config: () => ({ inbound: { limits: { maxHeaderBytes: '128KiB' } } }),
}, async (t, { inbound, logs }) => {
  const long = `/long/${'a"b\\c'.repeat(6000)}`; // 30,000 characters, 42,000 once escaped
  await (await request(`${inbound}/before`)).body.text();
  // Node's default upstream answers 431 to so long a head; meshlet passes that on.
  const answer = await rawExchange(Number(new URL(inbound).port), `GET ${long} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, { end: false });
  const status = parseHead(answer).status;
  await (await request(`${inbound}/after`)).body.text();
  await logs.next((l) => l.path === '/after');
  const lines = logs.access().slice(-3);
  t.deepEqual(lines.map((l: LogLine) => l.path), ['/before', long, '/after']);
  t.is(lines[1]!.status, status);
});

test('timestamps, durations and counts are written like toISOString, to two decimals, in decimal', (t) => {
  const out = Buffer.alloc(64);
  const text = (end: number) => out.toString('latin1', 0, end);
  const base = Date.UTC(2026, 10, 25, 23, 59, 59);
  const isoTime = new IsoTime();
  for (const ms of [base, base + 5, base + 42, base + 999, base + 1000, base + 1007, 0, base + 86_400_123]) {
    t.is(text(isoTime.put(out, 0, ms)), new Date(ms).toISOString(), String(ms));
  }
  const hundredths = (ms: number) => text(putHundredths(out, 0, ms));
  t.is(hundredths(0), '0.00');
  t.is(hundredths(0.004), '0.00');
  t.is(hundredths(0.005), '0.01');
  t.is(hundredths(0.999), '1.00');
  t.is(hundredths(1.5), '1.50');
  t.is(hundredths(7.09), '7.09');
  t.is(hundredths(123_456.789), '123456.79');
  for (const n of [0, 7, 10, 99, 100, 65_535, 1_234_567_890_123]) t.is(text(putUint(out, 0, n)), String(n));
});
