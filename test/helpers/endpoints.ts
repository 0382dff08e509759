/**
 * Several real upstream servers behind one upstream name (`pool`), for load balancing and outlier
 * detection: `startPool(t, [handler, ...], { pool: {...} })`.
 */
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import type { FakeClock } from './fake-clock.ts';
import { startUpstream, type RequestHandler, type Upstream } from './servers.ts';
import { startSidecar, type Fixture } from './with-sidecar.ts';

export type Pool = Fixture & { servers: Upstream[] };

/** One server per handler, and a sidecar whose upstream `pool` has them all as endpoints, in order. */
export async function startPool(
  t: ExecutionContext,
  handlers: RequestHandler[],
  options: { pool?: Record<string, unknown>; clock?: FakeClock } = {},
): Promise<Pool> {
  const servers = await Promise.all(handlers.map((handler) => startUpstream(t, handler)));
  const fixture = await startSidecar(t, {
    config: () => ({ upstreams: { pool: { endpoints: servers.map((s) => s.url), ...options.pool } } }),
    sidecar: options.clock === undefined ? {} : { clock: options.clock },
  });
  return { ...fixture, servers };
}

/** Send `count` GETs to the pool, `concurrency` at a time; the statuses, in order of completion. */
export async function callPool(pool: Pool, count: number, concurrency = 1): Promise<number[]> {
  const statuses: number[] = [];
  let sent = 0;
  const worker = async () => {
    while (sent < count) {
      sent++;
      const res = await request(`${pool.outbound}/work`, { headers: { host: 'pool' } });
      await res.body.dump();
      statuses.push(res.statusCode);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return statuses;
}

/** Requests each server received. */
export function received(pool: Pool): number[] {
  return pool.servers.map((s) => s.requests.length);
}

export type EndpointView = {
  url: string;
  state: 'healthy' | 'ejected';
  ejectedUntil: string | null;
  timesEjected: number;
  consecutiveFailures: number;
  ewmaMs: number;
  inFlight: number;
};

/** The pool as GET /upstreams shows it. */
export async function describePool(pool: Pool): Promise<{ healthy: number; ejected: number; loadBalancer: string; endpoints: EndpointView[] }> {
  const body = (await (await request(`${pool.admin}/upstreams`)).body.json()) as { upstreams: { name: string }[] };
  return body.upstreams.find((u) => u.name === 'pool') as never;
}

/** `meshlet_upstream_endpoints` of the pool, by state, from GET /metrics. */
export async function endpointGauge(pool: Pool): Promise<Record<string, number>> {
  const text = await (await request(`${pool.admin}/metrics`)).body.text();
  const gauge: Record<string, number> = {};
  for (const match of text.matchAll(/^meshlet_upstream_endpoints\{upstream="pool",state="(\w+)"[^}]*\} (\d+)$/gm)) gauge[match[1]!] = Number(match[2]);
  return gauge;
}
