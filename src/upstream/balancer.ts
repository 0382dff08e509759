/**
 * Choosing an endpoint for each attempt, among those in service (not ejected).
 *
 * - `p2c-ewma` (default, Linkerd's): two endpoints drawn at random, the cheaper one wins; an endpoint's
 *   cost is its latency estimate (ewma.ts) × (its requests in flight + 1), so a slow endpoint and a
 *   busy one are both avoided, and every endpoint still gets some traffic to measure.
 * - `round-robin`: each endpoint in turn; fair when endpoints are alike.
 *
 * Picking is on the request path: no allocation, and one endpoint is returned at once. A retry passes
 * the endpoint its previous attempt used as `avoid`, and gets another one whenever there is one.
 */
import type { Clock } from '../core/clock.ts';
import { MeshletError } from '../core/errors.ts';
import type { Layer, Send } from '../core/stage.ts';
import type { Policy } from '../config/schema.ts';
import type { Endpoint } from './endpoint.ts';
import type { Upstream } from './upstream.ts';

export type LoadBalancerSettings = Policy['loadBalancer'];

export interface LoadBalancer {
  /**
   * The endpoint for the next attempt, not `avoid` unless it is the only one; undefined when
   * `endpoints` is empty.
   */
  pick(endpoints: readonly Endpoint[], avoid: Endpoint | null): Endpoint | undefined;
}

/** Each endpoint in turn. */
export class RoundRobin implements LoadBalancer {
  private next = 0;

  pick(endpoints: readonly Endpoint[], avoid: Endpoint | null): Endpoint | undefined {
    const n = endpoints.length;
    if (n <= 1) return endpoints[0];
    if (this.next >= n) this.next = 0;
    let picked = endpoints[this.next++]!;
    if (picked === avoid) {
      if (this.next >= n) this.next = 0;
      picked = endpoints[this.next++]!;
    }
    return picked;
  }
}

/** Power of two choices over the peak-EWMA latency weighted by requests in flight. */
export class PeakEwmaP2C implements LoadBalancer {
  private readonly clock: Clock;
  private readonly random: () => number;

  /** `random` is `Math.random` but in tests. */
  constructor(clock: Clock, random: () => number = Math.random) {
    this.clock = clock;
    this.random = random;
  }

  pick(endpoints: readonly Endpoint[], avoid: Endpoint | null): Endpoint | undefined {
    const n = endpoints.length;
    if (n <= 1) return endpoints[0];
    // Two distinct indexes: the second is drawn among the n - 1 others.
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const a = endpoints[i]!;
    const b = endpoints[j]!;
    if (a === avoid) return b;
    if (b === avoid) return a;
    const now = this.clock.now();
    return cost(b, now) < cost(a, now) ? b : a;
  }
}

/** Linkerd's (tower's) load of an endpoint: latency × (pending + 1). */
function cost(endpoint: Endpoint, now: number): number {
  return endpoint.latency.valueAt(now) * (endpoint.inFlight + 1);
}

export function createLoadBalancer(settings: LoadBalancerSettings, clock: Clock): LoadBalancer {
  return settings.policy === 'round-robin' ? new RoundRobin() : new PeakEwmaP2C(clock);
}

/** 503 `no_healthy_endpoints`: `upstream` has no endpoint to send to. */
export function noEndpoint(upstream: Upstream): MeshletError {
  return new MeshletError('no_healthy_endpoints', `${upstream.name} has no endpoint to send to`, { retryAfter: 1 });
}

/**
 * The layer that gives each attempt its endpoint, or refuses it with 503 `no_healthy_endpoints`
 * (an outcome that counts against nobody's health). A retry avoids the endpoint the exchange's
 * previous attempt went to, when another is in service: the same endpoint failing twice is likelier
 * than two failing once each.
 */
export function pickEndpoint(upstream: Upstream): Layer {
  return (next: Send): Send =>
    function pickEndpointFor(attempt) {
      const endpoint = upstream.pickEndpoint(attempt.resendCount > 0 ? attempt.ex.endpoint : null);
      if (endpoint === undefined) return Promise.reject(attempt.refuse(noEndpoint(upstream)));
      attempt.endpoint = endpoint;
      return next(attempt);
    };
}
