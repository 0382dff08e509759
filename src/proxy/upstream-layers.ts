/**
 * Every upstream's stack of layers (the primary's and outbound's alike), outermost first:
 *   deadline   the total timeout: armed once per exchange, across retries and the streamed body;
 *   pick       an endpoint for each attempt, or 503 no_healthy_endpoints;
 *   send       undici; resolves at the response head, before anything reaches the client
 *              (the listener's last step then relays it).
 * Breaker, retry, client span and per-try timeout take their places as they are built:
 *   deadline → retry → breaker → pick → client span → per-try timeout → send.
 * Retry sits outside the breaker so that every attempt is counted by it, and outside the pick so that
 * a retry may go to another endpoint.
 */
import type { Runtime } from '../core/runtime.ts';
import { compose, sendAttempt } from '../core/stage.ts';
import { deadline } from '../resilience/deadline.ts';
import { pickEndpoint } from '../upstream/balancer.ts';
import type { UpstreamStack } from '../upstream/upstream.ts';

export function upstreamStack(runtime: Runtime): UpstreamStack {
  return (upstream) =>
    compose([deadline(upstream.policy.timeouts.total), pickEndpoint(upstream), ...(runtime.extraLayers?.(upstream) ?? [])], sendAttempt);
}
