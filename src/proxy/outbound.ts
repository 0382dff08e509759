/**
 * The outbound request path: the primary agent -> this sidecar -> another agent, chosen by name.
 *
 * The upstream is the request's host name, port ignored: `Host: researcher` (origin-form) and
 * `GET http://researcher/x` (absolute-form, as HTTP_PROXY clients send) both reach `researcher`.
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Runtime } from '../core/runtime.ts';
import { compose, lastStep, type Handler, type Stage } from '../core/stage.ts';
import { ConcurrencyLimit } from '../resilience/concurrency.ts';
import { minUploadRate } from '../resilience/upload-rate.ts';
import { observe } from '../telemetry/observe.ts';
import { UpstreamTable } from '../upstream/table.ts';
import { checkFraming } from './framing.ts';
import { forwardToUpstream } from './forward.ts';
import { maxConnections } from './connection-limit.ts';
import { Listener } from './listener.ts';
import { answerAsteriskForm, targetOf } from './request-target.ts';
import { rescue } from './rescue.ts';
import { Tunnels } from './tunnels.ts';
import { createTunnelStep } from './upgrade.ts';
import { upstreamStack } from './upstream-layers.ts';

export function createOutbound(runtime: Runtime): { listener: Listener; upstreams: UpstreamTable } {
  const { config, metrics, logger, drain } = runtime;
  const outbound = config.outbound;
  // Per upstream: deadline → pick endpoint → send (upstream-layers.ts), as for the primary.
  const upstreams = new UpstreamTable(config, metrics, upstreamStack(runtime));
  const limit = new ConcurrencyLimit(outbound.limits.maxConcurrentRequests, outbound.limits.maxSourceShare);
  const tunnels = new Tunnels({ max: outbound.limits.maxTunnels, halfCloseTimeoutMs: outbound.limits.tunnelHalfCloseTimeout });
  // Per request: the same order as inbound (see inbound.ts), routing by name last.
  const stages: Stage[] = [
    observe('outbound', metrics.route('outbound', 'unknown'), runtime.accessLog),
    rescue(logger),
    checkFraming,
    drain.stage,
    limit.stage,
    minUploadRate(outbound.limits.minUploadRate),
    routeByName(upstreams),
  ];
  const tunnel = createTunnelStep({ tunnels, trustForwarded: outbound.trustForwardedHeaders });
  const pipeline = compose(stages, lastStep({ request: forwardToUpstream, upgrade: tunnel }));
  const listener = new Listener({
    name: 'outbound',
    limits: outbound.limits,
    trustForwarded: outbound.trustForwardedHeaders,
    pipeline,
    logger,
    clock: runtime.clock,
    tunnels,
    upgradeTypes: outbound.upgradeTypes,
    maxConnections: maxConnections(outbound.limits.maxConnections, runtime.descriptors),
    metrics,
  });
  return { listener, upstreams };
}

function routeByName(upstreams: UpstreamTable): Stage {
  return (next: Handler): Handler =>
    function routeByHost(ex: Exchange): Promise<void> {
      if (ex.path === '*') return answerAsteriskForm(ex);
      const target = targetOf(ex.path, ex.head.host);
      if (target.path === null) return Promise.reject(new MeshletError('bad_request', 'only http:// absolute URIs can be proxied'));
      ex.path = target.path;
      const upstream = upstreams.get(target.name);
      if (upstream === undefined) {
        const message = target.name === '' ? 'the request names no upstream (no Host)' : `no upstream called "${target.name}" is configured or registered`;
        return Promise.reject(new MeshletError('unknown_upstream', message));
      }
      ex.routeTo(upstream);
      return next(ex);
    };
}
