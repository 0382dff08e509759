/**
 * The inbound request path: other agents -> this sidecar -> the primary agent.
 */
import type { Logger } from 'pino';
import type { MeshletConfig } from '../config/schema.ts';
import type { Drain } from '../health/drain.ts';
import { ConcurrencyLimit } from '../resilience/concurrency.ts';
import type { AccessLog } from '../telemetry/access-log.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { observe } from '../telemetry/observe.ts';
import { forwardToTarget } from './forward.ts';
import { MeshletError } from './errors.ts';
import { checkFraming } from './framing.ts';
import { Listener } from './listener.ts';
import { compose, type Handler, type Stage } from './pipeline.ts';
import { targetOf } from './request-target.ts';
import { rescue } from './rescue.ts';
import { Tunnels } from './tunnels.ts';
import { createUpgradeHandler } from './upgrade.ts';
import { Upstream } from './upstream.ts';
import type { Exchange } from './exchange.ts';

/** The upstream name of the primary in metrics, logs and error replies. */
export const PRIMARY = 'primary';

export type InboundDeps = { config: MeshletConfig; metrics: Metrics; logger: Logger; accessLog: AccessLog | null; drain: Drain };

export function createInbound(deps: InboundDeps): { listener: Listener; primary: Upstream } {
  const { config, metrics, logger, drain } = deps;
  const inbound = config.inbound;
  const primary = new Upstream(
    PRIMARY,
    { ...config.defaults, timeouts: inbound.timeouts },
    [inbound.primary],
    metrics,
    'inbound',
  );
  const limit = new ConcurrencyLimit(inbound.limits.maxConcurrentRequests);
  const unrouted = metrics.route('inbound', PRIMARY);
  // Order matters. Outermost first:
  //   observe              metrics and access log: sees every outcome, local replies included, and
  //                        times the whole exchange;
  //   rescue               the one place errors become replies, inside observe so replies are recorded;
  //   framing              refuse ambiguous requests before anything acts on them;
  //   drain                refuse new work while shutting down;
  //   concurrency          shed load before spending a connection on it;
  //   route                everything inbound goes to the primary.
  const stages: Stage[] = [
    observe('inbound', unrouted, deps.accessLog),
    rescue(logger),
    checkFraming,
    drain.stage,
    limit.stage,
    routeTo(primary),
  ];
  const pipeline: Handler = compose(stages, forwardToTarget);
  const tunnels = new Tunnels({ max: inbound.limits.maxTunnels, halfCloseTimeoutMs: inbound.limits.tunnelHalfCloseTimeout });
  const upgrade = createUpgradeHandler({ route: () => primary, drain, trustForwarded: inbound.trustForwardedHeaders, logger, unrouted, tunnels });
  const listener = new Listener({
    name: 'inbound',
    limits: inbound.limits,
    trustForwarded: inbound.trustForwardedHeaders,
    pipeline,
    upgrade,
    logger,
    unrouted,
    tunnels,
  });
  return { listener, primary };
}

function routeTo(upstream: Upstream): Stage {
  return (next: Handler): Handler =>
    function routeToPrimary(ex: Exchange): Promise<void> {
      // An absolute-form target (`GET http://any/x`) reaches the primary in origin-form (`/x`), as
      // from any proxy: a primary checking `req.url.startsWith('/admin')` must not be handed a
      // request line its router reads differently.
      if (ex.path.charCodeAt(0) !== 47 /* / */) {
        const path = targetOf(ex.path, undefined).path;
        if (path === null) return Promise.reject(new MeshletError('bad_request', 'only http:// absolute URIs are accepted'));
        ex.path = path;
      }
      ex.routeTo(upstream);
      return next(ex);
    };
}
