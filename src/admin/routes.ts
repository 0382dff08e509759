/**
 * The admin endpoints (contract: "Admin listener").
 */
import type { MeshletConfig } from '../config/schema.ts';
import { redact } from '../config/redact.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { UpstreamTable } from '../upstream/table.ts';
import type { Upstream } from '../upstream/upstream.ts';
import type { AdminRoutes } from './server.ts';

/** What the admin endpoints read: the sidecar's parts, not the sidecar. */
export type AdminSources = {
  readonly config: MeshletConfig;
  readonly metrics: Metrics;
  readonly primary: Upstream;
  readonly upstreams: UpstreamTable;
  readiness(): { ready: boolean; reasons: string[] };
};

export function createAdminRoutes(sidecar: AdminSources): AdminRoutes {
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
    /** Effective config: defaults filled in, durations in milliseconds, sizes in bytes. */
    'GET /config': () => ({ status: 200, body: redact(sidecar.config) }),
    'GET /upstreams': () => ({
      status: 200,
      body: {
        primary: sidecar.primary.describe(),
        upstreams: sidecar.upstreams.all().map((u) => u.describe()),
      },
    }),
  };
}

/** What the read-only metrics listener (`telemetry.metrics.listen`) serves: nothing that changes anything. */
const READ_ONLY = ['GET /metrics', 'GET /healthz', 'GET /readyz'] as const;

/** The admin routes a listener open to Prometheus and kubelet probes may serve. */
export function readOnlyRoutes(routes: AdminRoutes): AdminRoutes {
  return Object.fromEntries(READ_ONLY.map((key) => [key, routes[key]!]));
}
