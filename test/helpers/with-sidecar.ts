/**
 * `withSidecar`: an ava macro that runs a real meshlet on 127.0.0.1:0 in front of a real upstream
 * server, and closes both in teardown.
 *
 *   test('passes bytes', withSidecar, { upstream: handler, config: {...} }, async (t, { sidecar, upstream }) => ...)
 */
import { Writable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { deepMerge, parseConfig } from '../../src/config/load.ts';
import { Sidecar, type SidecarOptions } from '../../src/sidecar.ts';
import { FakeClock } from './fake-clock.ts';
import { startUpstream, type RequestHandler, type Upstream } from './servers.ts';

export type LogLine = Record<string, unknown> & { msg?: string };

/**
 * A log destination the test owns (in-process pino, or a child's stdout piped in): every JSON line,
 * parsed, and a way to await one. Chunks may end mid-line; the rest waits for the next chunk.
 */
export class LogSink extends Writable {
  readonly lines: LogLine[] = [];
  private waiters: { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];
  private partial = '';

  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    const texts = (this.partial + chunk.toString()).split('\n');
    this.partial = texts.pop() ?? '';
    for (const text of texts) {
      if (text === '') continue;
      const line = JSON.parse(text) as LogLine;
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => (w.match(line) ? (w.resolve(line), false) : true));
    }
    callback();
  }

  /** The first line (already written or still to come) that matches. */
  next(match: (line: LogLine) => boolean): Promise<LogLine> {
    const found = this.lines.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  access(): LogLine[] {
    return this.lines.filter((line) => line.type === 'access');
  }
}

export type Fixture = {
  sidecar: Sidecar;
  upstream: Upstream;
  logs: LogSink;
  inbound: string;
  outbound: string;
  admin: string;
  /** The read-only metrics listener (`telemetry.metrics.listen`). */
  metrics: string;
  /** Lay `overrides` over the config a reload reads (a null removes a key), and reload (as POST /reload would). */
  reloadWith: (overrides: Record<string, unknown>) => ReturnType<Sidecar['reload']>;
};

export type FixtureOptions = {
  upstream?: RequestHandler;
  /** Config merged over the test defaults (listeners on port 0, primary = the upstream). */
  config?: (upstream: Upstream) => Record<string, unknown>;
  /** Wait until the primary's health check passed (default true). */
  waitReady?: boolean;
  /** Sidecar options beyond the log sink: a fake clock, extra layers, the environment (OTEL_*). */
  sidecar?: Pick<SidecarOptions, 'clock' | 'extraLayers' | 'env'>;
  /** Export Node process metrics, event-loop lag among them (default false: most tests do not read them). */
  processMetrics?: boolean;
};

/** Start a sidecar in front of a fresh upstream; both are closed when the test ends. */
export async function startSidecar(t: ExecutionContext, options: FixtureOptions = {}): Promise<Fixture> {
  const upstream = await startUpstream(t, options.upstream);
  const base = {
    service: { name: 'test-agent', drainTimeout: '5s' },
    inbound: {
      listen: '127.0.0.1:0',
      primary: upstream.url,
      healthCheck: { interval: '50ms', timeout: '500ms', path: '/healthz' },
    },
    outbound: { listen: '127.0.0.1:0' },
    admin: { listen: '127.0.0.1:0' },
    telemetry: { metrics: { listen: '127.0.0.1:0' } },
    upstreams: { echo: { endpoints: [upstream.url] } },
  };
  let raw = deepMerge(base, options.config?.(upstream) ?? {});
  const loaded = parseConfig(raw);
  if (!loaded.ok) throw new Error(`test config invalid:\n${loaded.problems.join('\n')}`);
  const logs = new LogSink();
  // What a reload reads: the test's config, as `reloadWith` last changed it.
  const configSource = () => Promise.resolve(parseConfig(raw));
  const sidecar = new Sidecar(loaded.config, { ...options.sidecar, configSource, logDestination: logs, processMetrics: options.processMetrics ?? false });
  await sidecar.start();
  t.teardown(() => sidecar.close());
  const addresses = sidecar.addresses!;
  if (options.waitReady !== false && !sidecar.probe.healthy) {
    await new Promise((resolve) => sidecar.probe.once('change', resolve));
  }
  return {
    sidecar,
    upstream,
    logs,
    inbound: `http://127.0.0.1:${addresses.inbound.port}`,
    outbound: `http://127.0.0.1:${addresses.outbound.port}`,
    admin: `http://127.0.0.1:${addresses.admin.port}`,
    metrics: `http://127.0.0.1:${addresses.metrics.port}`,
    reloadWith: (overrides) => {
      raw = withoutNulls(deepMerge(raw, overrides));
      return sidecar.reload('POST /reload');
    },
  };
}

export const withSidecar = test.macro(
  async (t, options: FixtureOptions, body: (t: ExecutionContext, fixture: Fixture) => Promise<void>) => {
    await body(t, await startSidecar(t, options));
  },
);

/**
 * A sidecar whose policies run on a fake clock (timers of the total deadline, and later windows,
 * backoff, budgets, ejection): the test moves time with `clock.advance(ms)` instead of sleeping.
 */
export const withFakeClock = test.macro(
  async (t, options: FixtureOptions, body: (t: ExecutionContext, fixture: Fixture & { clock: FakeClock }) => Promise<void>) => {
    const clock = new FakeClock();
    const fixture = await startSidecar(t, { ...options, sidecar: { ...options.sidecar, clock } });
    await body(t, { ...fixture, clock });
  },
);

/** A copy without the keys whose value is null: how `reloadWith` removes a key. */
function withoutNulls(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)]));
}
