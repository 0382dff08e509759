/** Choosing an endpoint for each request. */

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
