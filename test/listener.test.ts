import test from 'ava';
import pino from 'pino';
import { request } from 'undici';
import { parseConfig } from '../src/config/load.ts';
import { systemClock } from '../src/core/clock.ts';
import { Listener } from '../src/proxy/listener.ts';
import { Tunnels } from '../src/proxy/tunnels.ts';
import { Metrics } from '../src/telemetry/metrics.ts';
import { LogSink } from './helpers/with-sidecar.ts';

test('a bug that escapes the pipeline is logged and cuts only that response', async (t) => {
  const loaded = parseConfig({ service: { name: 'bug' } });
  if (!loaded.ok) return t.fail();
  const logs = new LogSink();
  let calls = 0;
  const listener = new Listener({
    name: 'inbound',
    limits: loaded.config.inbound.limits,
    trustForwarded: false,
    pipeline: async (ex) => {
      calls++;
      if (calls === 1) throw new Error('bug on the request path');
      ex.res!.end('fine');
    },
    clock: systemClock,
    upgradeTypes: ['websocket'],
    maxConnections: 100,
    metrics: new Metrics({ serviceName: 'bug', processMetrics: false }),
    logger: pino(logs),
    tunnels: new Tunnels({ max: 1, halfCloseTimeoutMs: 1000 }),
  });
  const address = await listener.listen('127.0.0.1:0');
  t.teardown(() => listener.close());
  const base = `http://127.0.0.1:${address.port}`;
  await t.throwsAsync(request(`${base}/first`, { reset: true }));
  const line = await logs.next((l) => l.msg === 'request pipeline failed');
  t.is((line.err as { message: string }).message, 'bug on the request path');
  const second = await request(`${base}/second`);
  t.is(await second.body.text(), 'fine');
  t.is(listener.active, 0);
});
