/**
 * The admin endpoints (contract: "Admin listener").
 */
import type { MeshletConfig } from '../config/schema.ts';
import { redact } from '../config/redact.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { UpstreamTable } from '../upstream/table.ts';
import type { Upstream } from '../upstream/upstream.ts';
import type { CircuitBreaker } from '../resilience/breaker.ts';
import type { ConfigReloads, ReloadReport, ReloadTrigger } from '../reload.ts';
import type { AdminReply, AdminRoutes } from './server.ts';
import { createWhatIfRoute, describeHistories, WHAT_IF_PATH } from './what-if-route.ts';

/** What the admin endpoints read: the sidecar's parts, not the sidecar. */
export type AdminSources = {
  readonly config: MeshletConfig;
  readonly metrics: Metrics;
  readonly primary: Upstream;
  readonly upstreams: UpstreamTable;
  readonly reloads: ConfigReloads;
  readonly discovery: { describe(): object };
  readiness(): { ready: boolean; reasons: string[] };
  reload(trigger: ReloadTrigger): Promise<ReloadReport>;
};

export function createAdminRoutes(sidecar: AdminSources): AdminRoutes {
  const whatIf = createWhatIfRoute(sidecar);
  return {
    /** Liveness: the process answers. Never depends on the primary. */
    'GET /healthz': () => ({ status: 200, body: { status: 'alive' } }),
    /** Readiness: listeners up, primary healthy, not draining; 503 with the reasons otherwise. */
    'GET /readyz': () => {
      const { ready, reasons } = sidecar.readiness();
      return { status: ready ? 200 : 503, body: { ready, reasons } };
    },
    /** Prometheus text, or OpenMetrics (with exemplars) when the scrape's Accept asks for it. */
    'GET /metrics': async (req) => {
      const { body, contentType } = await sidecar.metrics.scrape(req.headers.accept);
      return { status: 200, body, contentType };
    },
    /**
     * The config in force (defaults filled in, durations in milliseconds, sizes in bytes, secrets
     * redacted), its version, and the last reload and last refused one.
     */
    'GET /config': () => ({
      status: 200,
      body: {
        version: sidecar.reloads.version,
        startedAt: sidecar.reloads.startedAt,
        lastReload: sidecar.reloads.last,
        lastFailure: sidecar.reloads.lastFailure,
        config: redact(sidecar.config),
      },
    }),
    /** Re-read the config file (as SIGHUP does); 422 with every problem when it is refused. */
    'POST /reload': async () => {
      const report = await sidecar.reload('POST /reload');
      return { status: report.result === 'failure' ? 422 : 200, body: report };
    },
    /**
     * Every breaker: state, window counts and error %, settings, last transition and why; and the
     * outcome histories the what-if replays (entries, bytes).
     */
    'GET /breakers': () => ({ status: 200, body: { breakers: breakers(sidecar).map((b) => b.describe()), outcomeHistory: describeHistories(sidecar) } }),
    /**
     * POST /breakers/NAME/open | close | release: force a state (incident response), or let go.
     * POST /breakers/NAME/what-if: replay recent outcomes with candidate settings (what-if-route.ts).
     */
    'POST /breakers/*': (req) => (WHAT_IF_PATH.test(req.url ?? '') ? whatIf(req) : forceBreaker(sidecar, req.url ?? '')),
    'GET /upstreams': () => ({
      status: 200,
      body: {
        primary: sidecar.primary.describe(),
        upstreams: sidecar.upstreams.all().map((u) => u.describe()),
      },
    }),
    /** Own registration (state, instance, lease) and the instances discovered. */
    'GET /registry': () => ({ status: 200, body: sidecar.discovery.describe() }),
  };
}

function breakers(sidecar: AdminSources): CircuitBreaker[] {
  return [sidecar.primary, ...sidecar.upstreams.all()].flatMap((u) => (u.breaker === null ? [] : [u.breaker]));
}

const FORCE_PATH = /^\/breakers\/([^/?]+)\/(open|close|release)(\?.*)?$/;

function forceBreaker(sidecar: AdminSources, url: string): AdminReply {
  const match = FORCE_PATH.exec(url);
  if (match === null) return { status: 404, body: { error: 'use POST /breakers/NAME/open, /close, /release or /what-if' } };
  const [, name, action] = match as unknown as [string, string, 'open' | 'close' | 'release'];
  const breaker = breakers(sidecar).find((b) => b.upstream === decodeURIComponent(name));
  if (breaker === undefined) return { status: 404, body: { error: `no breaker for "${name}"`, breakers: breakers(sidecar).map((b) => b.upstream) } };
  if (action === 'release') breaker.release();
  else breaker.force(action === 'open' ? 'open' : 'closed', `forced ${action === 'open' ? 'open' : 'closed'} by POST ${url}`);
  return { status: 200, body: breaker.describe() };
}

/** What the read-only metrics listener (`telemetry.metrics.listen`) serves: nothing that changes anything. */
const READ_ONLY = ['GET /metrics', 'GET /healthz', 'GET /readyz'] as const;

/** The admin routes a listener open to Prometheus and kubelet probes may serve. */
export function readOnlyRoutes(routes: AdminRoutes): AdminRoutes {
  return Object.fromEntries(READ_ONLY.map((key) => [key, routes[key]!]));
}
