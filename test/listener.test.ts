import test from 'ava';
import pino from 'pino';
import { request } from 'undici';
import { parseConfig } from '../src/config/load.ts';
import { systemClock } from '../src/core/clock.ts';
import type { Handler } from '../src/core/stage.ts';
import { Listener } from '../src/proxy/listener.ts';
import { Tunnels } from '../src/proxy/tunnels.ts';
import { Metrics } from '../src/telemetry/metrics.ts';
import type { Observe } from '../src/telemetry/observe.ts';
import { LogSink } from './helpers/with-sidecar.ts';

function bareListener(logs: LogSink, pipeline: Handler, observe: Observe = () => {}): Listener {
  const loaded = parseConfig({ service: { name: 'bug' } });
  if (!loaded.ok) throw new Error('config');
  return new Listener({
    name: 'inbound',
    limits: loaded.config.inbound.limits,
    trustForwarded: false,
    pipeline,
    observe,
    clock: systemClock,
    upgradeTypes: ['websocket'],
    maxConnections: 100,
    metrics: new Metrics({ serviceName: 'bug', processMetrics: false }),
    logger: pino(logs),
    tunnels: new Tunnels({ max: 1, halfCloseTimeoutMs: 1000 }),
  });
}

test('a bug that escapes the stages is answered 500 internal, logged, and only that request fails', async (t) => {
  const logs = new LogSink();
  let calls = 0;
  const observed: number[] = [];
  const listener = bareListener(
    logs,
    async (ex) => {
      calls++;
      if (calls === 1) throw new Error('bug on the request path');
      ex.status = 200;
      ex.res!.end('fine');
    },
    (ex) => observed.push(ex.status),
  );
  const address = await listener.listen('127.0.0.1:0');
  t.teardown(() => listener.close());
  const base = `http://127.0.0.1:${address.port}`;
  const first = await request(`${base}/first`);
  t.is(first.statusCode, 500);
  t.is(((await first.body.json()) as { error: { code: string } }).error.code, 'internal');
  const line = await logs.next((l) => l.msg === 'bug: unexpected error on the request path');
  t.is((line.err as { message: string }).message, 'bug on the request path');
  const second = await request(`${base}/second`);
  t.is(await second.body.text(), 'fine');
  t.deepEqual(observed, [500, 200]);
  t.is(listener.active, 0);
});

test('a failure while recording a finished request is logged; the response and the listener are unharmed', async (t) => {
  const logs = new LogSink();
  const listener = bareListener(
    logs,
    async (ex) => {
      ex.res!.end('fine');
    },
    () => {
      throw new Error('bug while recording');
    },
  );
  const address = await listener.listen('127.0.0.1:0');
  t.teardown(() => listener.close());
  const answer = await request(`http://127.0.0.1:${address.port}/`);
  t.is(await answer.body.text(), 'fine');
  const line = await logs.next((l) => l.msg === 'recording a request failed');
  t.is((line.err as { message: string }).message, 'bug while recording');
  t.is(listener.active, 0);
});
