/**
 * An endpoint's latency as the load balancer sees it: a peak-sensitive, time-weighted moving average
 * (Finagle's and Linkerd's "peak EWMA").
 *
 * - A latency above the estimate replaces it at once: an endpoint turning slow is avoided at its first
 *   slow answer, not after many.
 * - A latency below blends in with weight `1 - e^(-Δt/decay)`, Δt being the time since the previous
 *   observation: the average spans about `decay` of time, however busy the endpoint is.
 * - Read between observations, the estimate fades toward zero over `decay`, so an endpoint that was
 *   slow once and then left alone is tried again rather than shunned for ever.
 *
 * The latency measured is the time to the response head, not to the end of the body: an agent's
 * token stream may run for minutes and says nothing about how loaded the endpoint is.
 */
import type { Attempt } from '../core/attempt.ts';

/**
 * The estimate a new endpoint starts with (Linkerd's `EWMA_DEFAULT_RTT`): optimistic enough that a new
 * endpoint is tried soon, and replaced by its first slower answer.
 */
export const DEFAULT_LATENCY_MS = 30;

export class PeakEwma {
  private estimate = DEFAULT_LATENCY_MS;
  private updatedAt: number;
  private readonly decayMs: number;

  /** `now` on the runtime clock (ms); `decayMs` > 0. */
  constructor(decayMs: number, now: number) {
    this.decayMs = decayMs;
    this.updatedAt = now;
  }

  /** The estimate at `now`, faded by the time since the last observation. Allocates nothing. */
  valueAt(now: number): number {
    const elapsed = now - this.updatedAt;
    return elapsed > 0 ? this.estimate * Math.exp(-elapsed / this.decayMs) : this.estimate;
  }

  /** A latency of `latencyMs` observed at `now`. */
  observe(latencyMs: number, now: number): void {
    if (latencyMs > this.estimate) {
      this.estimate = latencyMs;
    } else {
      const weight = Math.exp(-Math.max(0, now - this.updatedAt) / this.decayMs);
      this.estimate = this.estimate * weight + latencyMs * (1 - weight);
    }
    this.updatedAt = now;
  }
}

/**
 * An attempt's outcome listener: feed its latency to its endpoint's estimate. The time to the response
 * head when one came; for a failure without a head, the time until it failed (a timeout is slow; a
 * refused connection is fast, and outlier detection deals with it). Attempts meshlet refused or the
 * client abandoned before any head say nothing about the endpoint.
 */
export function recordLatency(attempt: Attempt): void {
  const endpoint = attempt.endpoint;
  if (endpoint === null || attempt.sentAt === 0) return;
  if (attempt.headAt > 0) endpoint.latency.observe(attempt.headAt - attempt.sentAt, attempt.endedAt);
  else if (attempt.outcome === 'failure') endpoint.latency.observe(attempt.endedAt - attempt.sentAt, attempt.endedAt);
}
