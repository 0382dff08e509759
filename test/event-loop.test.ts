import { once } from 'node:events';
import test from 'ava';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { EventLoopLag } from '../src/telemetry/event-loop.ts';
import { spawnMeshlet } from './helpers/process.ts';
import { startUpstream } from './helpers/servers.ts';
import { withSidecar } from './helpers/with-sidecar.ts';

const STATISTICS = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'] as const;

/** Every event-loop lag series in a scrape, by statistic (`last` for meshlet_nodejs_eventloop_lag_seconds). */
function lagSeries(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const [, statistic, value] of text.matchAll(/^meshlet_nodejs_eventloop_lag_(?:(\w+)_)?seconds(?:\{[^}]*\})? (\S+)$/gm)) {
    found.set(statistic ?? 'last', Number(value));
  }
  return found;
}

async function scrape(admin: string): Promise<string> {
  return (await request(`${admin}/metrics`)).body.text();
}

/** Block this thread's event loop, which the in-process sidecar shares, for `ms`. */
function blockEventLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test('an idle sidecar reports event-loop lag of a few milliseconds, not its sampling interval', async (t) => {
  const upstream = await startUpstream(t);
  const meshlet = spawnMeshlet(t, ['run', '--config', 'config/minimal.yaml'], {
    MESHLET__SERVICE__NAME: 'idle',
    MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__INBOUND__PRIMARY: upstream.url,
    MESHLET__INBOUND__HEALTHCHECK__INTERVAL: '150ms',
    MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
    MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
  });
  const admin = `http://${String((await meshlet.line((l) => l.msg === 'meshlet started')).admin)}`;
  // Each scrape reports the turns since the previous one. The first scrapes run cold (JIT), a stall as
  // real as any, so readings start after them; each window then spans two health checks of the
  // primary, the only thing an idle sidecar does, and a few 100 ms sampling intervals.
  for (let i = 0; i < 10; i++) await scrape(admin);
  const windows: Map<string, number>[] = [];
  for (let i = 0; i < 7; i++) {
    for (let probe = 0; probe < 2; probe++) await once(upstream.server, 'request');
    windows.push(lagSeries(await scrape(admin)));
  }
  t.deepEqual([...windows[0]!.keys()].sort(), ['last', ...STATISTICS].sort());
  // Wall time: on a shared machine a turn preempted by other processes reads its wait too, so the
  // quietest window shows what an idle sidecar reads, and the median one stays far from 100 ms.
  const sorted = (statistic: string) => windows.map((w) => w.get(statistic)!).sort((a, b) => a - b);
  for (const statistic of ['p50', 'p99', 'max']) {
    const [quietest, , , median] = sorted(statistic);
    t.true(quietest! < 0.005, `quietest ${statistic} = ${quietest} s`);
    t.true(median! < 0.02, `median ${statistic} = ${median} s`);
  }
  // Every window saw turns (the scrape before it, the probes): none is an empty reading.
  for (const window of windows) t.true(window.get('min')! > 0, `min = ${window.get('min')} s`);
  // prom-client's other process metrics are still there.
  const text = await scrape(admin);
  const others = ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes'];
  for (const name of [...others, 'nodejs_gc_duration_seconds']) t.regex(text, new RegExp(`^# TYPE meshlet_${name} `, 'm'));
});

test('a 50 ms block of the event loop shows up whole in the max and p99', withSidecar, {
  processMetrics: true,
}, async (t, { admin }) => {
  await scrape(admin); // the window now starts here
  blockEventLoop(50);
  const lag = lagSeries(await scrape(admin));
  t.true(lag.get('max')! >= 0.04, `max = ${lag.get('max')} s`);
  t.true(lag.get('p99')! >= 0.04, `p99 = ${lag.get('p99')} s (under 100 turns in the window: p99 is the max)`);
});

test('the lag series read 0 when no turn of the loop ended since the last scrape', async (t) => {
  const registry = new Registry();
  const lag = new EventLoopLag(registry, 'meshlet_');
  lag.close();
  await registry.metrics(); // whatever was recorded before close()
  const series = lagSeries(await registry.metrics());
  t.is(series.size, 8);
  for (const [statistic, seconds] of series) t.is(seconds, 0, statistic);
});
