/**
 * An upstream: a named service, its resolved policy, and the endpoints it can be reached at.
 */
import type { UpstreamConfig } from '../config/schema.ts';
import { RoundRobin, type LoadBalancer } from '../resilience/load-balancer.ts';
import type { Direction, Metrics, RouteMetrics } from '../telemetry/metrics.ts';
import { Endpoint } from './endpoint.ts';

export class Upstream {
  readonly endpoints: Endpoint[];
  readonly route: RouteMetrics;
  private readonly balancer: LoadBalancer<Endpoint> = new RoundRobin();

  readonly name: string;
  readonly policy: UpstreamConfig;

  constructor(name: string, policy: UpstreamConfig, urls: readonly string[], metrics: Metrics, direction: Direction) {
    this.name = name;
    this.policy = policy;
    this.endpoints = urls.map((url) => new Endpoint(url, policy.timeouts));
    this.route = metrics.route(direction, name);
    metrics.upstreamEndpoints.labels(name, 'healthy').set(this.endpoints.length);
    metrics.upstreamEndpoints.labels(name, 'ejected').set(0);
  }

  /** The endpoint for the next request, or undefined when there is none. */
  pickEndpoint(): Endpoint | undefined {
    return this.balancer.pick(this.endpoints);
  }

  /** What GET /upstreams shows. (Ejection and breakers come with outlier detection and circuit breaking.) */
  describe(): object {
    return {
      name: this.name,
      endpoints: this.endpoints.map((e) => ({ url: e.url, ejected: false, inFlight: e.inFlight })),
      inFlight: this.endpoints.reduce((sum, e) => sum + e.inFlight, 0),
      tunnels: this.route.tunnelsOpen.value,
    };
  }

  close(): Promise<unknown> {
    return Promise.all(this.endpoints.map((e) => e.close()));
  }
}
