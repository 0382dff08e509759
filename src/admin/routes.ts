/**
 * The admin endpoints (contract: "Admin listener").
 */
import { redact } from '../config/redact.ts';
import type { Sidecar } from '../sidecar.ts';
import type { AdminRoutes } from './server.ts';

export function createAdminRoutes(sidecar: Sidecar): AdminRoutes {
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
  };
}
