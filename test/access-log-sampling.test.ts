import test from 'ava';
import { request } from 'undici';
import { withSidecar } from './helpers/with-sidecar.ts';

test('sampleSuccesses: 0 logs no success, and every failure, local reply and client gone', withSidecar, {
  config: () => ({ telemetry: { accessLog: { sampleSuccesses: 0 } } }),
  upstream: (req, res) => {
    if (req.url === '/slow') return; // never answers: the client gives up
    res.statusCode = req.url === '/boom' ? 503 : req.url === '/missing' ? 404 : 200;
    res.end('x');
  },
}, async (t, { inbound, outbound, logs, upstream }) => {
  for (let i = 0; i < 20; i++) await (await request(`${inbound}/ok/${i}`)).body.text();
  await (await request(`${inbound}/boom`)).body.text();
  await (await request(`${inbound}/missing`)).body.text();
  await (await request(`${outbound}/x`, { headers: { host: 'nobody' } })).body.text();
  const controller = new AbortController();
  const abandoned = request(`${inbound}/slow`, { signal: controller.signal }).catch(() => {});
  await upstream.received('/slow');
  controller.abort();
  await abandoned;
  await logs.next((l) => l.type === 'access' && l.status === 499);
  const logged = logs.access().map((l) => `${String(l.path)} ${String(l.status)}`);
  t.deepEqual(logged.filter((line) => line.startsWith('/ok/')), [], 'no success logged');
  t.true(logged.includes('/boom 503'));
  t.true(logged.includes('/missing 404'));
  t.true(logged.includes('/x 404'), 'a local reply');
  t.true(logged.includes('/slow 499'), 'a client gone');
});

test('sampleSuccesses: 0.5 logs about half of the successes', withSidecar, {
  config: () => ({ telemetry: { accessLog: { sampleSuccesses: 0.5 } } }),
}, async (t, { inbound, outbound, logs }) => {
  for (let i = 0; i < 400; i++) await (await request(`${inbound}/s/${i}`)).body.text();
  // A local reply is always logged, after the successes: once it is, every line before it is in.
  await (await request(`${outbound}/end`, { headers: { host: 'nobody' } })).body.text();
  await logs.next((l) => l.type === 'access' && l.path === '/end');
  const successes = logs.access().filter((l) => String(l.path).startsWith('/s/')).length;
  // Binomial(400, 0.5): 200 ± 10; outside 140..260 has a probability under 1e-9.
  t.true(successes > 140 && successes < 260, String(successes));
});

test('an access line carries the trace id when tracing gives one, and none otherwise', withSidecar, {}, async (t, { sidecar, inbound, logs }) => {
  await (await request(`${inbound}/untraced`)).body.text();
  sidecar.metrics.traceIdOf = (ex) => (ex.path === '/traced' ? '4bf92f3577b34da6a3ce929d0e0e4736' : '');
  await (await request(`${inbound}/traced`)).body.text();
  const traced = await logs.next((l) => l.type === 'access' && l.path === '/traced');
  t.is(traced.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  const untraced = await logs.next((l) => l.type === 'access' && l.path === '/untraced');
  t.false('traceId' in untraced);
});
