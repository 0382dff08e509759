/**
 * One try at getting an answer from an upstream: the object every upstream layer reads and fills, and
 * the only one a layer adds per request. A retry is a new attempt (`again()`) for the same exchange.
 *
 * Life of an attempt: layers pick its endpoint and arm its timers, `send()` puts it on the wire and
 * resolves at the response head (status and headers set, nothing sent to the client yet), then one of
 * `relay()` (the commit point: head and body go to the client) or `discard()` (a layer decided
 * otherwise). Its outcome (outcome.ts) is made once, when it ends, and published to the upstream.
 */
import type { Span } from '@opentelemetry/api';
import type { MeshletError } from './errors.ts';
import type { Exchange } from './exchange.ts';
import { REJECTED_LABEL, type OutcomeKind, type OutcomeLabel } from './outcome.ts';
import type { Endpoint } from '../upstream/endpoint.ts';

/** Response headers as undici hands them over (lower-case names). */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

const NO_HEADERS: ResponseHeaders = Object.freeze({});

export abstract class Attempt {
  readonly ex: Exchange;
  /** 0 for the first try, n for the nth retry (OTel's `http.request.resend_count`). */
  readonly resendCount: number;
  /** Where it goes; set by the endpoint-picking layer. */
  endpoint: Endpoint | null = null;
  /** The response head; `status` is 0 until it arrived. */
  status = 0;
  statusMessage: string | undefined = undefined;
  headers: ResponseHeaders = NO_HEADERS;
  /** Runtime-clock times (ms): sent, response head, end. 0 until then. */
  sentAt = 0;
  headAt = 0;
  endedAt = 0;
  /** How it ended; 'pending' until it has (outcome.ts). */
  outcome: OutcomeKind = 'pending';
  /** The outcome as a bounded label in `retryOn`'s vocabulary: `success`, `reset`, `503`, ... */
  label: OutcomeLabel = '';
  /** Whether `retries.retryOn` names the failure (a retry may still be unsafe for other reasons). */
  retryable = false;
  /** The failure behind a `failure` or `ignored` outcome, when there is one. */
  failure: MeshletError | null = null;
  /** Its CLIENT span while tracing, until the outcome ends it (telemetry/tracing/client-span.ts). */
  span: Span | null = null;
  /** The exchange's attempt whose outcome was made before this one's (the access log lists them). */
  previous: Attempt | null = null;

  constructor(ex: Exchange, resendCount: number) {
    this.ex = ex;
    this.resendCount = resendCount;
  }

  /** Put the attempt on the wire; resolves with it at the response head. */
  abstract send(): Promise<Attempt>;
  /** Write the response head and stream the body to the client; resolves when the body is complete. */
  abstract relay(): Promise<void>;
  /** Drop the response (a layer answers otherwise): the upstream request is cancelled. */
  abstract discard(): void;
  /** Stop the upstream request at once (client gone, deadline). */
  abstract abort(reason: Error): void;
  /** A fresh attempt for the same exchange: a retry. */
  abstract again(): Attempt;

  /**
   * Meshlet refuses to send this attempt (no endpoint, breaker open): an outcome that is nobody's
   * failure. Returns the error to reject with.
   */
  refuse(error: MeshletError): MeshletError {
    this.settle('ignored', REJECTED_LABEL, error);
    return error;
  }

  /** Make the outcome, once, and publish it to the upstream's listeners. */
  protected settle(outcome: Exclude<OutcomeKind, 'pending'>, label: OutcomeLabel, failure: MeshletError | null): void {
    if (this.outcome !== 'pending') return;
    this.outcome = outcome;
    this.label = label;
    this.failure = failure;
    this.ex.outcome = label;
    this.previous = this.ex.settled;
    this.ex.settled = this;
    const target = this.ex.target;
    if (target === null) return;
    this.retryable = outcome === 'failure' && target.rules.isRetryable(label);
    this.endedAt = this.ex.clock.now();
    target.recordOutcome(this);
  }
}

