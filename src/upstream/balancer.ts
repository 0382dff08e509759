/** Choosing an endpoint for each attempt. */
import { MeshletError } from '../core/errors.ts';
import type { Layer, Send } from '../core/stage.ts';
import type { Upstream } from './upstream.ts';

export interface LoadBalancer<T> {
  /** The endpoint for the next request; undefined when there is none to choose. */
  pick(endpoints: readonly T[]): T | undefined;
}

/** Each endpoint in turn. Cheap and fair when endpoints are alike. */
export class RoundRobin<T> implements LoadBalancer<T> {
  private next = 0;

  pick(endpoints: readonly T[]): T | undefined {
    if (endpoints.length === 0) return undefined;
    if (this.next >= endpoints.length) this.next = 0;
    return endpoints[this.next++];
  }
}

/** 503 `no_healthy_endpoints`: `upstream` has no endpoint to send to. */
export function noEndpoint(upstream: Upstream): MeshletError {
  return new MeshletError('no_healthy_endpoints', `${upstream.name} has no endpoint to send to`, { retryAfter: 1 });
}

/**
 * The layer that gives each attempt its endpoint, or refuses it with 503 `no_healthy_endpoints`
 * (an outcome that counts against nobody's health).
 */
export function pickEndpoint(upstream: Upstream): Layer {
  return (next: Send): Send =>
    function pickEndpointFor(attempt) {
      const endpoint = upstream.pickEndpoint();
      if (endpoint === undefined) return Promise.reject(attempt.refuse(noEndpoint(upstream)));
      attempt.endpoint = endpoint;
      return next(attempt);
    };
}
