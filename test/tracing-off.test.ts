/**
 * Tracing off costs nothing: a meshlet started with tracing off (the default) never loads the
 * OpenTelemetry SDK, not even after serving requests. With tracing on, the same check sees it.
 * `@opentelemetry/api` (no-op interfaces, ~1 ms) is not counted: prom-client's process metrics load
 * it whether tracing is on or not.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { request } from 'undici';
import { spawnMeshlet } from './helpers/process.ts';
import { startUpstream } from './helpers/servers.ts';

const HOOK = new URL('./helpers/record-imports.ts', import.meta.url).pathname;

/** The OpenTelemetry SDK's modules a meshlet loaded while serving one request each way, start to exit. */
async function openTelemetryLoaded(t: Parameters<typeof startUpstream>[0], tracing: boolean): Promise<string[]> {
  const upstream = await startUpstream(t);
  const record = join(await mkdtemp(join(tmpdir(), 'meshlet-imports-')), 'loaded.txt');
  const meshlet = spawnMeshlet(
    t,
    ['run', '--config', 'config/minimal.yaml'],
    {
      MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__INBOUND__PRIMARY: upstream.url,
      MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
      MESHLET__UPSTREAMS__RESEARCHER__ENDPOINTS: `[${upstream.url}]`,
      MESHLET__TELEMETRY__TRACING__ENABLED: String(tracing),
      OTEL_TRACES_EXPORTER: 'none',
      RECORD_IMPORTS: record,
    },
    ['--import', HOOK],
  );
  const inbound = await meshlet.listening('inbound');
  const outbound = await meshlet.listening('outbound');
  for (const [url, host] of [[`http://${inbound}/in`, 'planner'], [`http://${outbound}/out`, 'researcher']]) {
    const res = await request(url!, { headers: { host: host! } });
    t.is(res.statusCode, 200);
    await res.body.text();
  }
  meshlet.child.kill('SIGTERM');
  t.is(await meshlet.exit, 0);
  return (await readFile(record, 'utf8')).split('\n').filter((line) => line !== '' && !line.includes('/@opentelemetry/api/'));
}

test('with tracing off the OpenTelemetry SDK is never loaded; with it on it is', async (t) => {
  t.deepEqual(await openTelemetryLoaded(t, false), []);
  const loaded = await openTelemetryLoaded(t, true);
  t.true(loaded.some((url) => url.includes('/@opentelemetry/sdk-trace/')), loaded.join('\n'));
});
