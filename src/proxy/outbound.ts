/**
 * The outbound request path: the primary agent -> this sidecar -> another agent, chosen by name.
 *
 * The upstream is the request's host name, port ignored: `Host: researcher` (origin-form) and
 * `GET http://researcher/x` (absolute-form, as HTTP_PROXY clients send) both reach `researcher`, and
 * so does every request inside a `CONNECT researcher:80` tunnel (connect.ts).
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { MeshletConfig } from '../config/schema.ts';
import type { Runtime } from '../core/runtime.ts';
import { compose, lastStep, type Handler, type Stage } from '../core/stage.ts';
import { ConcurrencyLimit } from '../resilience/concurrency.ts';
import { minUploadRate } from '../resilience/upload-rate.ts';
import { observe } from '../telemetry/observe.ts';
import { serverSpan } from '../telemetry/tracing/server-span.ts';
import { UpstreamTable } from '../upstream/table.ts';
import { checkFraming } from './framing.ts';
import { TerminatedTunnels } from './connect.ts';
import { forwardToUpstream } from './forward.ts';
import { maxConnections } from './connection-limit.ts';
import { Listener } from './listener.ts';
import { answerAsteriskForm, authorityName, targetOf } from './request-target.ts';
import { Tunnels } from './tunnels.ts';
import { createTunnelStep } from './upgrade.ts';
import { upstreamStack } from './upstream-layers.ts';

/** The outbound listener, its upstreams, and what a reload may change in them. */
export type Outbound = {
  readonly listener: Listener;
  readonly upstreams: UpstreamTable;
  /** Take a reloaded config: upstreams and defaults, and the listener's request limits. */
  reconfigure(config: MeshletConfig, changed: readonly string[]): void;
};

export function createOutbound(runtime: Runtime): Outbound {
  const { config, metrics, logger, drain } = runtime;
  const outbound = config.outbound;
  // Per upstream: the layers of upstream-layers.ts, as for the primary.
  const upstreams = new UpstreamTable(config, runtime, upstreamStack(runtime));
  const tunnels = new Tunnels({ max: outbound.limits.maxTunnels, halfCloseTimeoutMs: outbound.limits.tunnelHalfCloseTimeout });
  // CONNECT to a known name: answered 200, its bytes served as HTTP by this same pipeline (connect.ts).
  const terminated = new TerminatedTunnels();
  const tunnel = createTunnelStep({ tunnels, trustForwarded: outbound.trustForwardedHeaders });
  // Per request: the same order as inbound (see inbound.ts), routing by name last.
  const pipeline = ({ outbound: settings }: MeshletConfig) => {
    const limit = new ConcurrencyLimit(settings.limits.maxConcurrentRequests, settings.limits.maxSourceShare);
    const stages: Stage[] = [
      serverSpan(runtime.tracing),
      checkFraming,
      drain.stage,
      limit.stage,
      minUploadRate(settings.limits.minUploadRate),
      routeByName(upstreams, terminated),
    ];
    return compose(stages, lastStep({ request: forwardToUpstream, upgrade: tunnel, connect: terminated.step }));
  };
  const listener = new Listener({
    name: 'outbound',
    limits: outbound.limits,
    trustForwarded: outbound.trustForwardedHeaders,
    pipeline: pipeline(config),
    observe: observe('outbound', metrics.route('outbound', 'unknown'), runtime.accessLog),
    logger,
    clock: runtime.clock,
    tunnels,
    upgradeTypes: outbound.upgradeTypes,
    maxConnections: maxConnections(outbound.limits.maxConnections, runtime.descriptors),
    metrics,
  });
  terminated.serveWith(listener.server);
  return {
    listener,
    upstreams,
    reconfigure(next, changed) {
      if (changed.some((key) => key.startsWith('upstreams') || key.startsWith('defaults'))) upstreams.reconfigure(next);
      if (changed.some((key) => key.startsWith('outbound.limits.'))) listener.setPipeline(pipeline(next));
    },
  };
}

/**
 * The upstream is the name the client used: the tunnel's target for requests inside a terminated
 * CONNECT tunnel, the CONNECT's authority for the CONNECT itself, else the request target's or
 * Host's host name.
 */
function routeByName(upstreams: UpstreamTable, tunnels: TerminatedTunnels): Stage {
  return (next: Handler): Handler =>
    function routeByHost(ex: Exchange): Promise<void> {
      let name: string;
      if (ex.kind === 'connect') {
        name = authorityName(ex.path);
      } else {
        if (ex.path === '*') return answerAsteriskForm(ex);
        const target = targetOf(ex.path, ex.head.host);
        if (target.path === null) return Promise.reject(new MeshletError('bad_request', 'only http:// absolute URIs can be proxied'));
        ex.path = target.path;
        name = tunnels.targetOf(ex.socket) ?? target.name;
      }
      const upstream = upstreams.get(name);
      if (upstream === undefined) {
        const message = name === '' ? 'the request names no upstream (no Host)' : `no upstream called "${name}" is configured or registered`;
        return Promise.reject(new MeshletError('unknown_upstream', message));
      }
      ex.routeTo(upstream);
      return next(ex);
    };
}
