/**
 * The metrics of breakers, retries and rate limits (contract: "Metrics"). They change on transitions
 * and failures, not on every request, so prom-client's own labelled metrics serve; the breakers'
 * windows and settings are read at scrape time.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** What a breaker shows at scrape time. */
export type BreakerReading = {
  readonly upstream: string;
  readonly settings: { readonly errorThresholdPercentage: number; readonly volumeThreshold: number; readonly window: number };
  window(): { requests: number; failures: number };
};

const STATES = ['closed', 'open', 'half_open'] as const;

export class ResilienceMetrics {
  private readonly breakers = new Map<string, BreakerReading>();
  readonly breakerStates: Gauge<'upstream' | 'state'>;
  readonly breakerTransitions: Counter<'upstream' | 'to'>;
  readonly retries: Counter<'upstream' | 'reason'>;
  readonly retryBudgetExhausted: Counter<'upstream'>;
  readonly rateLimited: Counter<'direction'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.breakerStates = new Gauge({
      name: 'meshlet_circuit_breaker_state',
      help: 'Circuit breaker state, one-hot: 1 for the state each upstream is in (closed, open, half_open).',
      labelNames: ['upstream', 'state'],
      registers,
    });
    this.breakerTransitions = new Counter({
      name: 'meshlet_circuit_breaker_transitions_total',
      help: 'Circuit breaker transitions, by the state entered.',
      labelNames: ['upstream', 'to'],
      registers,
    });
    this.retries = new Counter({
      name: 'meshlet_retries_total',
      help: 'Retries sent, by the failure that caused them (connect-failure, reset, timeout, a status such as 503).',
      labelNames: ['upstream', 'reason'],
      registers,
    });
    this.retryBudgetExhausted = new Counter({
      name: 'meshlet_retry_budget_exhausted_total',
      help: 'Retries not sent because the retry budget was spent.',
      labelNames: ['upstream'],
      registers,
    });
    this.rateLimited = new Counter({
      name: 'meshlet_rate_limited_total',
      help: 'Requests refused with 429 rate_limited.',
      labelNames: ['direction'],
      registers,
    });
    // Defined from the start, so that a rate over them is defined before the first event.
    for (const direction of ['inbound', 'outbound'] as const) this.rateLimited.labels(direction).inc(0);
    const breakers = this.breakers;
    const windowGauge = (name: string, help: string, read: (b: BreakerReading) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['upstream'],
        registers,
        collect() {
          this.reset();
          for (const breaker of breakers.values()) this.labels(breaker.upstream).set(read(breaker));
        },
      });
    windowGauge('meshlet_circuit_breaker_window_requests', "Attempts the breaker counted in its rolling window (compare with its volumeThreshold).", (b) => b.window().requests);
    windowGauge('meshlet_circuit_breaker_window_failures', 'Failed attempts the breaker counted in its rolling window.', (b) => b.window().failures);
    windowGauge('meshlet_circuit_breaker_error_threshold_ratio', 'The breaker opens when failures / requests in its window exceed this (errorThresholdPercentage / 100).', (b) => b.settings.errorThresholdPercentage / 100);
    windowGauge('meshlet_circuit_breaker_window_seconds', "The breaker's rolling window (circuitBreaker.window).", (b) => b.settings.window / 1000);
    windowGauge('meshlet_circuit_breaker_volume_threshold', 'Counted attempts the window must hold before the breaker may open.', (b) => b.settings.volumeThreshold);
  }

  /** Show `breaker` at scrape time (replacing an earlier one of the same upstream). */
  watchBreaker(breaker: BreakerReading): void {
    this.breakers.set(breaker.upstream, breaker);
    for (const state of STATES) this.breakerTransitions.labels(breaker.upstream, state).inc(0);
  }

  forgetBreaker(breaker: BreakerReading): void {
    if (this.breakers.get(breaker.upstream) === breaker) this.breakers.delete(breaker.upstream);
  }

  /** Start an upstream's retry series at 0. */
  watchRetries(upstream: string): void {
    this.retryBudgetExhausted.labels(upstream).inc(0);
  }

  /** Set the one-hot state gauge of `upstream`. */
  breakerState(upstream: string, state: (typeof STATES)[number]): void {
    for (const s of STATES) this.breakerStates.labels(upstream, s).set(s === state ? 1 : 0);
  }
}
