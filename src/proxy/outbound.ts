/**
 * The outbound request path: the primary agent -> this sidecar -> another agent, chosen by name.
 *
 * The upstream is the request's host name, port ignored: `Host: researcher` (origin-form) and
 * `GET http://researcher/x` (absolute-form, as HTTP_PROXY clients send) both reach `researcher`.
 */
import type { Logger } from 'pino';
import type { MeshletConfig } from '../config/schema.ts';
import type { UpstreamTable } from '../discovery/upstream-table.ts';
import type { Drain } from '../health/drain.ts';
import { ConcurrencyLimit } from '../resilience/concurrency.ts';
import type { AccessLog } from '../telemetry/access-log.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { observe } from '../telemetry/observe.ts';
import { MeshletError } from './errors.ts';
import type { Exchange } from './exchange.ts';
import { forwardToTarget } from './forward.ts';
import { checkFraming } from './framing.ts';
import { Listener } from './listener.ts';
import { compose, type Handler, type Stage } from './pipeline.ts';
import { targetOf } from './request-target.ts';
import { rescue } from './rescue.ts';
import { Tunnels } from './tunnels.ts';
import { createUpgradeHandler } from './upgrade.ts';
import type { Upstream } from './upstream.ts';

export type OutboundDeps = {
  config: MeshletConfig;
  metrics: Metrics;
  logger: Logger;
  accessLog: AccessLog | null;
  drain: Drain;
  upstreams: UpstreamTable;
};

export function createOutbound(deps: OutboundDeps): Listener {
  const { config, metrics, logger, drain, upstreams } = deps;
  const outbound = config.outbound;
  const limit = new ConcurrencyLimit(outbound.limits.maxConcurrentRequests);
  const unrouted = metrics.route('outbound', 'unknown');
  // Same order as inbound (see inbound.ts), with routing by name last before forwarding.
  const stages: Stage[] = [
    observe('outbound', unrouted, deps.accessLog),
    rescue(logger),
    checkFraming,
    drain.stage,
    limit.stage,
    routeByName(upstreams),
  ];
  const pipeline = compose(stages, forwardToTarget);
  const tunnels = new Tunnels({ max: outbound.limits.maxTunnels, halfCloseTimeoutMs: outbound.limits.tunnelHalfCloseTimeout });
  const upgrade = createUpgradeHandler({
    route: (req) => resolve(upstreams, targetOf(req.url ?? '/', req.headers.host).name),
    drain,
    trustForwarded: outbound.trustForwardedHeaders,
    logger,
    unrouted,
    tunnels,
  });
  return new Listener({
    name: 'outbound',
    limits: outbound.limits,
    trustForwarded: outbound.trustForwardedHeaders,
    pipeline,
    upgrade,
    logger,
    unrouted,
    tunnels,
  });
}

function routeByName(upstreams: UpstreamTable): Stage {
  return (next: Handler): Handler =>
    function routeByHost(ex: Exchange): Promise<void> {
      const target = targetOf(ex.path, ex.head.host);
      if (target.path === null) return Promise.reject(new MeshletError('bad_request', 'only http:// absolute URIs can be proxied'));
      ex.path = target.path;
      const upstream = resolve(upstreams, target.name);
      if (upstream instanceof MeshletError) return Promise.reject(upstream);
      ex.routeTo(upstream);
      return next(ex);
    };
}

function resolve(upstreams: UpstreamTable, name: string): Upstream | MeshletError {
  return (
    upstreams.get(name) ??
    new MeshletError('unknown_upstream', name === '' ? 'the request names no upstream (no Host)' : `no upstream called "${name}" is configured or registered`)
  );
}
