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
  readonly discovery: { describe(): object };
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
    'GET /metrics': async () => ({
      status: 200,
      body: await sidecar.metrics.registry.metrics(),
      contentType: sidecar.metrics.registry.contentType,
    }),
    /** Effective config: defaults filled in, durations in milliseconds, sizes in bytes. */
    'GET /config': () => ({ status: 200, body: redact(sidecar.config) }),
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
