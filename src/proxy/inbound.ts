/**
 * The inbound request path: other agents -> this sidecar -> the primary agent.
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { MeshletConfig, UpstreamConfig } from '../config/schema.ts';
import type { Runtime } from '../core/runtime.ts';
import { compose, lastStep, type Handler, type Stage } from '../core/stage.ts';
import { ConcurrencyLimit } from '../resilience/concurrency.ts';
import { rateLimit } from '../resilience/rate-limit.ts';
import { minUploadRate } from '../resilience/upload-rate.ts';
import { observe } from '../telemetry/observe.ts';
import { AGENT_CARD_PATH, type PublishedCard } from '../discovery/agent-card.ts';
import { serverSpan } from '../telemetry/tracing/server-span.ts';
import { Upstream } from '../upstream/upstream.ts';
import { checkFraming } from './framing.ts';
import { forwardToUpstream } from './forward.ts';
import { maxConnections } from './connection-limit.ts';
import { Listener } from './listener.ts';
import { answerAsteriskForm, targetOf } from './request-target.ts';
import { Tunnels } from './tunnels.ts';
import { createTunnelStep } from './upgrade.ts';
import { upstreamStack } from './upstream-layers.ts';

/** The upstream name of the primary in metrics, logs and error replies. */
export const PRIMARY = 'primary';

/** The inbound listener, and what a reload may change in it. */
export type Inbound = {
  readonly listener: Listener;
  /** The primary as an upstream; replaced by a reload that changes its policy. */
  readonly primary: Upstream;
  /** Take a reloaded config: the primary's policy, the rate limit and the listener's request limits. */
  reconfigure(config: MeshletConfig, changed: readonly string[]): void;
};

/**
 * `card`: the agent card meshlet serves in the primary's stead once registered (its `url` rewritten to
 * the registered address); while it holds none, the card path goes to the primary like any other.
 */
export function createInbound(runtime: Runtime, card: Readonly<PublishedCard> = { body: null }): Inbound {
  const { config, metrics, logger, drain } = runtime;
  const inbound = config.inbound;
  // Per upstream: the layers of upstream-layers.ts, as for every outbound upstream.
  const stack = upstreamStack(runtime);
  const target = { primary: new Upstream(PRIMARY, primaryPolicy(config), [inbound.primary], runtime, 'inbound', stack) };
  const tunnels = new Tunnels({ max: inbound.limits.maxTunnels, halfCloseTimeoutMs: inbound.limits.tunnelHalfCloseTimeout });
  const tunnel = createTunnelStep({ tunnels, trustForwarded: inbound.trustForwardedHeaders });
  // Per request, outermost first:
  //   observe       the SERVER span's end, metrics and access log: sees every outcome, local replies
  //                 included, and times the whole exchange;
  //   rescue        the one place errors become replies, inside observe so replies are recorded;
  //                 the listener runs these two around the stages (`observe` below, listener.ts);
  //   server span   the request's SERVER span, continuing the client's trace, ended by observe after
  //                 rescue, so that local replies are recorded on it (nothing when tracing is off);
  //   framing       refuse ambiguous requests (and those the parser refused) before anything acts;
  //   drain         refuse new work while shutting down;
  //   rate limit    a token bucket for the listener (429 rate_limited), off unless configured;
  //   concurrency   shed load before spending a connection on it, and keep one source to its share;
  //   upload rate   cut a body that trickles in (408), once it holds a slot that others could use;
  //   route         everything inbound goes to the primary (but the agent card, when meshlet has one);
  //   last step     forward through the primary's layers and relay, or open a tunnel for an upgrade.
  const pipeline = ({ inbound: settings }: MeshletConfig) => {
    const limit = new ConcurrencyLimit(settings.limits.maxConcurrentRequests, settings.limits.maxSourceShare);
    const stages: Stage[] = [
      serverSpan(runtime.tracing),
      checkFraming,
      drain.stage,
      rateLimit(settings.rateLimit, runtime.clock, metrics.resilience.rateLimited, 'inbound'),
      limit.stage,
      minUploadRate(settings.limits.minUploadRate),
      routeTo(target, card),
    ];
    return compose(stages, lastStep({ request: forwardToUpstream, upgrade: tunnel }));
  };
  const listener = new Listener({
    name: 'inbound',
    limits: inbound.limits,
    trustForwarded: inbound.trustForwardedHeaders,
    pipeline: pipeline(config),
    observe: observe('inbound', metrics.route('inbound', PRIMARY), runtime.accessLog),
    logger,
    clock: runtime.clock,
    tunnels,
    upgradeTypes: inbound.upgradeTypes,
    maxConnections: maxConnections(inbound.limits.maxConnections, runtime.descriptors),
    metrics,
  });
  return {
    listener,
    get primary() {
      return target.primary;
    },
    reconfigure(next, changed) {
      const before = target.primary;
      const after = before.reconfigured(primaryPolicy(next), [next.inbound.primary]);
      if (after !== before) {
        target.primary = after;
        before.retire(after);
      }
      // New stages for new requests; those in flight finish in the stages they entered.
      if (changed.some((key) => key.startsWith('inbound.rateLimit') || key.startsWith('inbound.limits.'))) listener.setPipeline(pipeline(next));
    },
  };
}

/** The primary's policy: `defaults`, with the inbound listener's timeouts, retries and breaker. */
function primaryPolicy(config: MeshletConfig): UpstreamConfig {
  const inbound = config.inbound;
  return { ...config.defaults, timeouts: inbound.timeouts, retries: inbound.retries, circuitBreaker: inbound.circuitBreaker };
}

function routeTo(target: { readonly primary: Upstream }, card: Readonly<PublishedCard>): Stage {
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
      if (ex.path === AGENT_CARD_PATH && card.body !== null && isRead(ex)) return answerAgentCard(ex, card.body);
      ex.routeTo(target.primary);
      return next(ex);
    };
}

/** A GET or HEAD that is not an upgrade: what meshlet answers with its copy of the agent card. */
function isRead(ex: Exchange): boolean {
  return ex.res !== null && (ex.req.method === 'GET' || ex.req.method === 'HEAD');
}

function answerAgentCard(ex: Exchange, body: Buffer): Promise<void> {
  const res = ex.res!;
  ex.status = 200;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'x-request-id': ex.requestId });
  res.end(ex.req.method === 'HEAD' ? undefined : body);
  return Promise.resolve();
}
