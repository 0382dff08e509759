/**
 * An upstream (a cluster): a named service, its resolved policy, the endpoints it can be reached at,
 * and its stack of layers, composed once when the upstream is made.
 *
 * The endpoint set is replaced atomically (discovery, reload): an attempt in flight keeps the endpoint
 * it picked, and endpoints that left are closed once their last request is done.
 */
import type { Attempt } from '../core/attempt.ts';
import { OutcomeRules } from '../core/outcome.ts';
import type { Send } from '../core/stage.ts';
import type { CircuitBreaker } from '../resilience/breaker.ts';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Direction, Metrics, RouteMetrics } from '../telemetry/metrics.ts';
import { RoundRobin, type LoadBalancer } from './balancer.ts';
import { Endpoint } from './endpoint.ts';

/** Reads every attempt's outcome once it is made (outcome.ts). */
export type OutcomeListener = (attempt: Attempt) => void;

/** Builds an upstream's stack of layers around sending, and its breaker; called once per upstream. */
export type UpstreamStack = (upstream: Upstream) => { send: Send; breaker: CircuitBreaker | null };

export class Upstream {
  readonly name: string;
  readonly policy: UpstreamConfig;
  readonly route: RouteMetrics;
  readonly rules: OutcomeRules;
  /** Sends an attempt through this upstream's layers; resolves at the response head. */
  readonly send: Send;
  /** The circuit breaker every attempt asks; null when `circuitBreaker.enabled` is false. */
  readonly breaker: CircuitBreaker | null;
  private current: readonly Endpoint[];
  private readonly balancer: LoadBalancer<Endpoint> = new RoundRobin();
  private readonly listeners: OutcomeListener[] = [];
  private readonly metrics: Metrics;

  constructor(name: string, policy: UpstreamConfig, urls: readonly string[], metrics: Metrics, direction: Direction, stack: UpstreamStack) {
    this.name = name;
    this.policy = policy;
    this.metrics = metrics;
    this.rules = new OutcomeRules(policy.retries.retryOn);
    this.current = urls.map((url) => new Endpoint(url, policy.timeouts));
    this.route = metrics.route(direction, name);
    this.countEndpoints();
    this.onOutcome((attempt) => this.route.attempted(attempt.label));
    const built = stack(this);
    this.send = built.send;
    this.breaker = built.breaker;
  }

  get endpoints(): readonly Endpoint[] {
    return this.current;
  }

  /** The endpoint for the next attempt, or undefined when there is none. */
  pickEndpoint(): Endpoint | undefined {
    return this.balancer.pick(this.current);
  }

  /**
   * Replace the endpoint set in one step. Endpoints that stay keep their connections; those that
   * left are closed when their requests in flight are done.
   */
  setEndpoints(urls: readonly string[]): void {
    const kept = new Map(this.current.map((e) => [e.url, e]));
    const next = urls.map((url) => kept.get(url) ?? new Endpoint(url, this.policy.timeouts));
    const staying = new Set(next);
    this.current = next;
    for (const endpoint of kept.values()) if (!staying.has(endpoint)) void endpoint.retire();
    this.countEndpoints();
  }

  /** Be told of every attempt's outcome. */
  onOutcome(listener: OutcomeListener): void {
    this.listeners.push(listener);
  }

  /** Called by the attempt, once, when its outcome is made. */
  recordOutcome(attempt: Attempt): void {
    const listeners = this.listeners;
    for (let i = 0; i < listeners.length; i++) listeners[i]!(attempt);
  }

  /** What GET /upstreams shows. (Ejection and breakers come with outlier detection and circuit breaking.) */
  describe(): object {
    return {
      name: this.name,
      endpoints: this.current.map((e) => ({ url: e.url, ejected: false, inFlight: e.inFlight })),
      inFlight: this.current.reduce((sum, e) => sum + e.inFlight, 0),
      tunnels: this.route.tunnelsOpen.value,
      breaker: this.breaker?.state ?? 'disabled',
    };
  }

  close(): Promise<unknown> {
    this.breaker?.close();
    return Promise.all(this.current.map((e) => e.close()));
  }

  private countEndpoints(): void {
    this.metrics.upstreamEndpoints.labels(this.name, 'healthy').set(this.current.length);
    this.metrics.upstreamEndpoints.labels(this.name, 'ejected').set(0);
  }
}
