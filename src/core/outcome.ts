/**
 * One outcome per attempt, classified once, in the attempt, and read by everyone who needs it: the
 * breaker, outlier detection, load-balancer latency, metrics, the access log, the what-if replay.
 *
 * - `success`: the response completed with a status that is not a failure;
 * - `failure`: the upstream failed: no connection, a reset, a timeout, a failure status (5xx), or a
 *   stream that broke after it started; `retryable` says whether `retries.retryOn` names the cause;
 * - `ignored`: says nothing about the upstream's health, and is counted by nobody's health: the
 *   client went away, or meshlet itself refused to send (breaker open, no endpoint).
 */
import type { MeshletError } from './errors.ts';

export type OutcomeKind = 'pending' | 'success' | 'failure' | 'ignored';

/**
 * What an attempt came to, as a bounded label (`meshlet_upstream_attempts_total{outcome}`) in the
 * vocabulary of `retries.retryOn`: `success`, `connect-failure`, `reset`, `timeout`, a failure
 * status such as `503`, or, for ignored attempts, `client-gone`, `client-slow`, `rejected` and `discarded`.
 */
export type OutcomeLabel = string;

export const SUCCESS: OutcomeLabel = 'success';
export const CLIENT_GONE_LABEL: OutcomeLabel = 'client-gone';
export const REJECTED_LABEL: OutcomeLabel = 'rejected';
/** A response a layer dropped (to answer otherwise) whose status says nothing against the upstream. */
export const DISCARDED_LABEL: OutcomeLabel = 'discarded';
/** The client's upload was cut for arriving too slowly (`limits.minUploadRate`). */
export const CLIENT_SLOW_LABEL: OutcomeLabel = 'client-slow';

/** The `retryOn` condition a transport failure falls under. */
export function failureLabel(error: MeshletError): OutcomeLabel {
  // A connect that timed out sent nothing, like a refused one: safe to retry for any method.
  if ((error.cause as { code?: string } | undefined)?.code === 'UND_ERR_CONNECT_TIMEOUT') return 'connect-failure';
  switch (error.code) {
    case 'upstream_unreachable':
      return 'connect-failure';
    case 'upstream_timeout':
      return 'timeout';
    case 'upstream_reset':
      return 'reset';
    default:
      return error.code;
  }
}

/** Status labels made once: classifying a status allocates nothing. */
const STATUS_LABELS: readonly string[] = Array.from({ length: 600 }, (_, status) => String(status));

/** An upstream's rules for reading outcomes, built once from its policy. */
export class OutcomeRules {
  private readonly retryOn: ReadonlySet<string>;

  constructor(retryOn: readonly string[]) {
    this.retryOn = new Set(retryOn);
  }

  /** Whether a response head with `status` is the upstream failing (every 5xx). */
  isFailureStatus(status: number): boolean {
    return status >= 500;
  }

  statusLabel(status: number): OutcomeLabel {
    return STATUS_LABELS[status] ?? String(status);
  }

  /** Whether `retries.retryOn` names this failure. */
  isRetryable(label: OutcomeLabel): boolean {
    return this.retryOn.has(label);
  }
}
