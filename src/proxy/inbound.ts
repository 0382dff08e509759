/**
 * The inbound request path: other agents -> this sidecar -> the primary agent.
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Runtime } from '../core/runtime.ts';
import { compose, lastStep, type Handler, type Stage } from '../core/stage.ts';
import { ConcurrencyLimit } from '../resilience/concurrency.ts';
import { minUploadRate } from '../resilience/upload-rate.ts';
import { observe } from '../telemetry/observe.ts';
import { serverSpan } from '../telemetry/tracing/server-span.ts';
import { Upstream } from '../upstream/upstream.ts';
import { checkFraming } from './framing.ts';
import { forwardToUpstream } from './forward.ts';
import { maxConnections } from './connection-limit.ts';
import { Listener } from './listener.ts';
import { answerAsteriskForm, targetOf } from './request-target.ts';
import { rescue } from './rescue.ts';
import { Tunnels } from './tunnels.ts';
import { createTunnelStep } from './upgrade.ts';
import { upstreamStack } from './upstream-layers.ts';

/** The upstream name of the primary in metrics, logs and error replies. */
export const PRIMARY = 'primary';

export function createInbound(runtime: Runtime): { listener: Listener; primary: Upstream } {
  const { config, metrics, logger, drain } = runtime;
  const inbound = config.inbound;
  const policy = { ...config.defaults, timeouts: inbound.timeouts, retries: inbound.retries, circuitBreaker: inbound.circuitBreaker };
  // Per upstream: deadline → pick endpoint → send (upstream-layers.ts).
  const primary = new Upstream(PRIMARY, policy, [inbound.primary], runtime, 'inbound', upstreamStack(runtime));
  const limit = new ConcurrencyLimit(inbound.limits.maxConcurrentRequests, inbound.limits.maxSourceShare);
  const tunnels = new Tunnels({ max: inbound.limits.maxTunnels, halfCloseTimeoutMs: inbound.limits.tunnelHalfCloseTimeout });
  // Per request, outermost first:
  //   observe       metrics and access log: sees every outcome, local replies included, and times
  //                 the whole exchange;
  //   server span   the request's SERVER span, continuing the client's trace; around rescue, so that
  //                 local replies are recorded on it (nothing when tracing is off);
  //   rescue        the one place errors become replies, inside observe so replies are recorded;
  //   framing       refuse ambiguous requests (and those the parser refused) before anything acts;
  //   drain         refuse new work while shutting down;
  //   concurrency   shed load before spending a connection on it, and keep one source to its share;
  //   upload rate   cut a body that trickles in (408), once it holds a slot that others could use;
  //   route         everything inbound goes to the primary;
  //   last step     forward through the primary's layers and relay, or open a tunnel for an upgrade.
  const stages: Stage[] = [
    observe('inbound', metrics.route('inbound', PRIMARY), runtime.accessLog),
    serverSpan(runtime.tracing),
    rescue(logger),
    checkFraming,
    drain.stage,
    limit.stage,
    minUploadRate(inbound.limits.minUploadRate),
    routeTo(primary),
  ];
  const tunnel = createTunnelStep({ tunnels, trustForwarded: inbound.trustForwardedHeaders });
  const pipeline = compose(stages, lastStep({ request: forwardToUpstream, upgrade: tunnel }));
  const listener = new Listener({
    name: 'inbound',
    limits: inbound.limits,
    trustForwarded: inbound.trustForwardedHeaders,
    pipeline,
    logger,
    clock: runtime.clock,
    tunnels,
    upgradeTypes: inbound.upgradeTypes,
    maxConnections: maxConnections(inbound.limits.maxConnections, runtime.descriptors),
    metrics,
  });
  return { listener, primary };
}

function routeTo(upstream: Upstream): Stage {
  return (next: Handler): Handler =>
    function routeToPrimary(ex: Exchange): Promise<void> {
      if (ex.path === '*') return answerAsteriskForm(ex);
      // Other agents call the primary; tunnelling through it is not a service meshlet offers.
      if (ex.kind === 'connect') return Promise.reject(new MeshletError('bad_request', 'CONNECT is not supported on the inbound listener'));
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
