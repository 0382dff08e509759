/**
 * An upstream (a cluster): a named service, its resolved policy, the endpoints it can be reached at,
 * and its stack of layers, composed once when the upstream is made.
 *
 * The endpoint set is replaced atomically (discovery, reload): an attempt in flight keeps the endpoint
 * it picked, and endpoints that left are closed once their last request is done.
 */
import type { Attempt } from '../core/attempt.ts';
import type { Clock } from '../core/clock.ts';
import { OutcomeRules } from '../core/outcome.ts';
import type { Runtime } from '../core/runtime.ts';
import type { Send } from '../core/stage.ts';
import type { CircuitBreaker } from '../resilience/breaker.ts';
import { OutcomeHistory } from '../resilience/outcome-history.ts';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Direction, Metrics, RouteMetrics } from '../telemetry/metrics.ts';
import { createLoadBalancer, type LoadBalancer } from './balancer.ts';
import { Endpoint } from './endpoint.ts';
import { PeakEwma, recordLatency } from './ewma.ts';
import { OutlierDetector } from './outlier-detector.ts';

/** Reads every attempt's outcome once it is made (outcome.ts). */
export type OutcomeListener = (attempt: Attempt) => void;

/**
 * Builds an upstream's stack of layers around sending, and its breaker; called once per upstream.
 * `inherited`, when given, is the breaker to keep (a reload that did not change its settings).
 */
export type UpstreamStack = (
  upstream: Upstream,
  inherited?: CircuitBreaker | null,
) => { send: Send; breaker: CircuitBreaker | null; relaysAtHead?: boolean };

/** What an upstream takes from the runtime (a whole `Runtime` will do); without a config, no outcome history. */
export type UpstreamServices = Pick<Runtime, 'metrics' | 'clock' | 'logger'> & Partial<Pick<Runtime, 'config'>>;

const NO_HISTORY = { maxAge: 0, maxEntries: 0 };

export class Upstream {
  readonly name: string;
  readonly policy: UpstreamConfig;
  readonly route: RouteMetrics;
  readonly rules: OutcomeRules;
  /** Sends an attempt through this upstream's layers; resolves at the response head. */
  readonly send: Send;
  /**
   * Whether an attempt relays its response the moment its head arrives, when no layer can want to
   * answer otherwise (forward.ts): true unless the stack holds layers that may replace any head.
   */
  readonly relaysAtHead: boolean;
  /** The circuit breaker every attempt asks; null when `circuitBreaker.enabled` is false. */
  readonly breaker: CircuitBreaker | null;
  /** Recent outcomes, for the what-if replay; a successor (reload) keeps adding to the same one. */
  readonly history: OutcomeHistory;
  private current: readonly Endpoint[];
  /** The endpoints not ejected, which the balancer picks from; remade only when the set or an ejection changes. */
  private inService: readonly Endpoint[];
  private readonly balancer: LoadBalancer;
  private readonly outliers: OutlierDetector;
  private readonly listeners: OutcomeListener[] = [];
  private readonly metrics: Metrics;
  private readonly clock: Clock;
  private readonly services: UpstreamServices;
  private readonly direction: Direction;
  private readonly stack: UpstreamStack;

  constructor(
    name: string,
    policy: UpstreamConfig,
    urls: readonly string[],
    services: UpstreamServices,
    direction: Direction,
    stack: UpstreamStack,
    predecessor: Upstream | null = null,
  ) {
    this.name = name;
    this.policy = policy;
    this.metrics = services.metrics;
    this.clock = services.clock;
    this.services = services;
    this.direction = direction;
    this.stack = stack;
    this.rules = new OutcomeRules(policy.retries.retryOn);
    const reusable = predecessor === null ? null : predecessor.reusableEndpoints(policy);
    this.current = this.inService = urls.map((url) => reusable?.get(url) ?? this.endpointFor(url));
    this.balancer = createLoadBalancer(policy.loadBalancer, services.clock);
    this.outliers = new OutlierDetector(policy.outlierDetection, services.clock, services.logger, this);
    this.route = services.metrics.route(direction, name);
    this.countEndpoints();
    this.onOutcome((attempt) => this.route.attempted(attempt.label));
    this.onOutcome(recordLatency);
    if (this.outliers.enabled) this.onOutcome(this.outliers.observe);
    this.history = predecessor?.history ?? new OutcomeHistory(name, services.config?.telemetry.outcomeHistory ?? NO_HISTORY, services.clock);
    if (this.history.settings.maxEntries > 0) this.onOutcome(this.history.record);
    const built = predecessor !== null && sameJson(predecessor.policy.circuitBreaker, policy.circuitBreaker) ? stack(this, predecessor.breaker) : stack(this);
    this.send = built.send;
    this.breaker = built.breaker;
    this.relaysAtHead = built.relaysAtHead ?? false;
  }

  /**
   * This upstream under a new policy or endpoint list (a reload): itself when neither changed; only
   * the endpoint set replaced when only it changed; else a successor that takes over the endpoints
   * whose pools can stay (connections kept) and the breaker when its settings are the same (state
   * and window kept; a forced state is released). Requests in flight finish on this upstream, under
   * the policy they started with; `retire()` it once the successor is in place.
   */
  reconfigured(policy: UpstreamConfig, urls: readonly string[]): Upstream {
    const { endpoints: _before, ...was } = this.policy;
    const { endpoints: _after, ...is } = policy;
    if (sameJson(was, is)) {
      if (!sameJson(this.current.map((e) => e.url), urls)) this.setEndpoints(urls);
      return this;
    }
    const successor = new Upstream(this.name, policy, urls, this.services, this.direction, this.stack, this);
    successor.breaker?.release();
    return successor;
  }

  /** Close what `successor` did not take over, once the requests in flight here are done. */
  retire(successor: Upstream | null): void {
    if (this.breaker !== null && successor?.breaker !== this.breaker) this.breaker.close();
    this.outliers.close();
    const taken = new Set(successor?.endpoints ?? []);
    for (const endpoint of this.current) {
      if (taken.has(endpoint)) continue;
      void endpoint.retire();
    }
  }

  /**
   * Endpoints a successor under `policy` may keep, by URL: their pools' settings (connect timeout) and
   * latency estimate are the same. Ejections end with the handover: the new policy decides afresh.
   */
  private reusableEndpoints(policy: UpstreamConfig): Map<string, Endpoint> | null {
    if (this.policy.timeouts.connect !== policy.timeouts.connect || this.policy.loadBalancer.ewmaDecay !== policy.loadBalancer.ewmaDecay) return null;
    this.outliers.close();
    for (const endpoint of this.current) endpoint.health.ejected = false;
    return new Map(this.current.map((e) => [e.url, e]));
  }

  /** Every endpoint, ejected ones included. */
  get endpoints(): readonly Endpoint[] {
    return this.current;
  }

  /**
   * The endpoint for the next attempt, among those not ejected, and other than `avoid` when another
   * is in service; undefined when there is none.
   */
  pickEndpoint(avoid: Endpoint | null = null): Endpoint | undefined {
    return this.balancer.pick(this.inService, avoid);
  }

  /**
   * Replace the endpoint set in one step. Endpoints that stay keep their connections, latency
   * estimate and ejection; those that left are closed when their requests in flight are done.
   */
  setEndpoints(urls: readonly string[]): void {
    const kept = new Map(this.current.map((e) => [e.url, e]));
    const next = urls.map((url) => kept.get(url) ?? this.endpointFor(url));
    const staying = new Set(next);
    this.current = next;
    for (const endpoint of kept.values()) {
      if (staying.has(endpoint)) continue;
      this.outliers.forget(endpoint);
      void endpoint.retire();
    }
    // Ejection never takes the last endpoint in service; a new set made only of ejected ones gets them back.
    if (next.length > 0 && next.every((e) => e.health.ejected)) {
      for (const endpoint of next) this.outliers.restore(endpoint, 'every endpoint left in the set was ejected');
    }
    this.ejectionsChanged();
  }

  /** Called by outlier detection when an endpoint was ejected or returned. */
  ejectionsChanged(): void {
    this.inService = this.current.filter((e) => !e.health.ejected);
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

  /** What GET /upstreams shows. */
  describe(): object {
    const now = this.clock.now();
    const wallNow = Date.now();
    return {
      name: this.name,
      loadBalancer: this.policy.loadBalancer.policy,
      healthy: this.inService.length,
      ejected: this.current.length - this.inService.length,
      endpoints: this.current.map((e) => {
        const health = e.health;
        return {
          url: e.url,
          state: health.ejected ? 'ejected' : 'healthy',
          // The runtime clock is monotonic: shown as wall time for people.
          ejectedUntil: health.ejected ? new Date(wallNow + health.ejectedUntil - now).toISOString() : null,
          timesEjected: health.timesEjected,
          consecutiveFailures: health.consecutiveFailures,
          ewmaMs: Math.round(e.latency.valueAt(now) * 10) / 10,
          inFlight: e.inFlight,
        };
      }),
      inFlight: this.current.reduce((sum, e) => sum + e.inFlight, 0),
      tunnels: this.route.tunnelsOpen.value,
      breaker: this.breaker?.state ?? 'disabled',
    };
  }

  close(): Promise<unknown> {
    this.breaker?.close();
    this.outliers.close();
    return Promise.all(this.current.map((e) => e.close()));
  }

  private endpointFor(url: string): Endpoint {
    return new Endpoint(url, this.policy.timeouts, new PeakEwma(this.policy.loadBalancer.ewmaDecay, this.clock.now()));
  }

  private countEndpoints(): void {
    this.metrics.upstreamEndpoints.labels(this.name, 'healthy').set(this.inService.length);
    this.metrics.upstreamEndpoints.labels(this.name, 'ejected').set(this.current.length - this.inService.length);
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
