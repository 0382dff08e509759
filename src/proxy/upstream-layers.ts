/**
 * Every upstream's stack of layers (the primary's and outbound's alike), outermost first:
 *   concurrency      the upstream's own limit on requests in flight (503 overloaded), once per request;
 *   deadline         the total timeout: armed once per exchange, across retries and the streamed body;
 *   retry            another attempt after a retryable failure, when safe and within the budget;
 *   breaker          every attempt asks the upstream's circuit breaker (503 circuit_open when open);
 *   pick             an endpoint for each attempt, or 503 no_healthy_endpoints;
 *   client span      each attempt's CLIENT span, and the traceparent naming it (nothing when tracing is off);
 *   per-try timeout  each attempt's time to its response head;
 *   send             undici; resolves at the response head, before anything reaches the client
 *                    (the listener's last step then relays it; a head no layer here could replace,
 *                    not a retryable failure, is relayed as it arrives: ForwardAttempt.onResponseStart).
 * Retry sits outside the breaker so that every attempt is counted by it and no retry goes into an
 * open one, and outside the pick so that a retry may go to another endpoint. The client span comes
 * after the pick, which tells where the attempt goes, and spans the per-try timeout it may end in.
 */
import type { Runtime } from '../core/runtime.ts';
import { compose, sendAttempt } from '../core/stage.ts';
import { CircuitBreaker, guardByBreaker } from '../resilience/breaker.ts';
import { upstreamConcurrency } from '../resilience/concurrency.ts';
import { deadline } from '../resilience/deadline.ts';
import { perTryTimeout } from '../resilience/per-try-timeout.ts';
import { retry } from '../resilience/retry.ts';
import { clientSpan } from '../telemetry/tracing/client-span.ts';
import { pickEndpoint } from '../upstream/balancer.ts';
import type { UpstreamStack } from '../upstream/upstream.ts';

export function upstreamStack(runtime: Runtime): UpstreamStack {
  const { clock, logger, metrics } = runtime;
  return (upstream, inherited) => {
    const policy = upstream.policy;
    const { enabled, ...settings } = policy.circuitBreaker;
    const breaker = inherited !== undefined ? inherited : enabled ? new CircuitBreaker(upstream.name, settings, { clock, logger, metrics: metrics.resilience }) : null;
    if (breaker !== null) upstream.onOutcome((attempt) => breaker.record(attempt));
    // Layers from outside (tests) may replace any response head; meshlet's own replace only the
    // retryable failures, so every other head can go to the client the moment it arrives.
    const extra = runtime.extraLayers?.(upstream) ?? [];
    const send = compose(
      [
        upstreamConcurrency(policy.limits.maxConcurrentRequests, upstream.route.inFlight, upstream.name),
        deadline(policy.timeouts.total),
        retry({ upstream: upstream.name, settings: policy.retries, breaker, clock, metrics: metrics.resilience }),
        guardByBreaker(breaker),
        pickEndpoint(upstream),
        clientSpan(runtime.tracing, upstream),
        ...extra,
        perTryTimeout(policy.retries.perTryTimeout),
      ],
      sendAttempt,
    );
    return { send, breaker, relaysAtHead: extra.length === 0 };
  };
}
