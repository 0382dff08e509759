/**
 * Retries: another attempt, on another endpoint when there is one, after a failure that `retryOn`
 * names, when that is safe, the budget allows it and the breaker is closed.
 *
 * Safe means (RFC 9110 §9.2.2): a connect failure (nothing was sent) may be retried for any method;
 * a reset, a timeout or a failure status only for idempotent methods or requests that carry
 * `Idempotency-Key`: an LLM call that may have run must not be run twice blindly. Never once response
 * bytes reached the client: retries happen before `relay()`, at the response head at the latest. A
 * request body is replayed from what was kept (body-replay.ts) or, when nothing of it was read yet,
 * sent from the client's stream again; a body too large to keep is forwarded but not retried.
 *
 * Waits are full-jitter exponential backoff, or the upstream's `Retry-After` up to `maxRetryAfter`
 * (an answer asking for longer is relayed as it is). The total deadline and the client leaving cut a
 * wait short. Each retry is counted by reason (`meshlet_retries_total`); a retry the budget refuses
 * is counted in `meshlet_retry_budget_exhausted_total`.
 */
import type { Policy } from '../config/schema.ts';
import type { Attempt } from '../core/attempt.ts';
import type { Clock } from '../core/clock.ts';
import type { Exchange } from '../core/exchange.ts';
import { MeshletError } from '../core/errors.ts';
import type { Layer, Send } from '../core/stage.ts';
import { BodyReplay } from './body-replay.ts';
import type { CircuitBreaker } from './breaker.ts';
import { RetryBudget } from './retry-budget.ts';

export type RetrySettings = Policy['retries'];

/** Methods a repeat of which has the effect of one (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const CONNECT_FAILURE = 'connect-failure';
const NO_RETRY = -1;

/** Where retries are counted (telemetry/resilience-metrics.ts implements it). */
export interface RetryMetrics {
  readonly retries: { labels(upstream: string, reason: string): { inc(): void } };
  readonly retryBudgetExhausted: { labels(upstream: string): { inc(): void } };
  /** Start an upstream's series at 0. */
  watchRetries(upstream: string): void;
}

export type RetryOptions = {
  upstream: string;
  settings: RetrySettings;
  breaker: CircuitBreaker | null;
  clock: Clock;
  metrics: RetryMetrics;
};

/** The retry layer of an upstream; costs nothing when `maxRetries` is 0. */
export function retry(options: RetryOptions): Layer {
  return (next: Send): Send => {
    if (options.settings.maxRetries === 0) return next;
    return new Retrier(next, options).send;
  };
}

class Retrier {
  /** Bound once per upstream. */
  readonly send: Send = (attempt) => this.run(attempt);
  private readonly next: Send;
  private readonly options: RetryOptions;
  private readonly budget: RetryBudget;

  constructor(next: Send, options: RetryOptions) {
    this.next = next;
    this.options = options;
    this.budget = new RetryBudget(options.settings.budget, options.clock);
    options.metrics.watchRetries(options.upstream);
  }

  private async run(first: Attempt): Promise<Attempt> {
    const ex = first.ex;
    this.budget.deposit();
    if (ex.hasBody && ex.bodyReplay === null && this.mayResendAfterSending(ex)) this.keepBody(ex);
    let attempt = first;
    for (;;) {
      let failure: unknown = null;
      try {
        const answered = await this.next(attempt);
        // status 0: the client left before the head; a status that is not retryable is the answer.
        if (answered.status === 0 || !answered.retryable) return answered;
      } catch (error) {
        failure = error;
      }
      const wait = this.delayBeforeRetry(attempt, failure);
      if (wait === NO_RETRY) {
        if (failure !== null) throw failure;
        return attempt;
      }
      if (failure === null) attempt.discard();
      this.options.metrics.retries.labels(this.options.upstream, attempt.label).inc();
      if (wait > 0) await pause(ex, this.options.clock, wait);
      attempt = attempt.again();
    }
  }

  /** ms to wait before retrying `attempt`, or NO_RETRY. */
  private delayBeforeRetry(attempt: Attempt, failure: unknown): number {
    const ex = attempt.ex;
    const { settings, breaker } = this.options;
    // `x-meshlet-retries` may lower maxRetries for this request.
    const maxRetries = ex.head.maxRetries < 0 ? settings.maxRetries : Math.min(settings.maxRetries, ex.head.maxRetries);
    if (!attempt.retryable || attempt.resendCount >= maxRetries || ex.cancelled !== null || ex.clientGone) return NO_RETRY;
    // The response has begun (a head relayed as it arrived, then the stream broke): never again.
    if (ex.status !== 0) return NO_RETRY;
    if (failure !== null && !(failure instanceof MeshletError)) return NO_RETRY;
    const label = failure === null ? String(attempt.status) : attempt.label;
    if (label !== CONNECT_FAILURE && !this.mayResendAfterSending(ex)) return NO_RETRY;
    if (!bodyCanBeResent(ex)) return NO_RETRY;
    if (breaker !== null && !breaker.allowsRetry()) return NO_RETRY;
    let wait = Math.random() * Math.min(settings.backoff.max, settings.backoff.base * 2 ** attempt.resendCount);
    if (failure === null) {
      const asked = retryAfterMs(attempt.headers['retry-after']);
      if (asked > settings.maxRetryAfter) return NO_RETRY;
      wait = Math.max(wait, asked);
    }
    if (!this.budget.withdraw()) {
      this.options.metrics.retryBudgetExhausted.labels(this.options.upstream).inc();
      return NO_RETRY;
    }
    return wait;
  }

  /** Whether a retry may follow a failure after the request was sent: idempotent, or keyed. */
  private mayResendAfterSending(ex: Exchange): boolean {
    return IDEMPOTENT.has(ex.req.method ?? 'GET') || hasIdempotencyKey(ex.head.headers);
  }

  /** Keep the body for a replay, unless its declared length is already more than may be kept. */
  private keepBody(ex: Exchange): void {
    const max = this.options.settings.maxBodyBytes;
    const length = ex.head.contentLength;
    if (max === 0 || (length !== undefined && Number(length) > max)) return;
    ex.bodyReplay = new BodyReplay(ex.req, max);
  }
}

function bodyCanBeResent(ex: Exchange): boolean {
  if (!ex.hasBody) return true;
  if (ex.bodyReplay !== null) return ex.bodyReplay.replayable;
  // Nothing of it was read (the connection never opened): the client's stream can go as it is.
  return !ex.req.readableDidRead;
}

function hasIdempotencyKey(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === 'idempotency-key') return true;
  return false;
}

/** `Retry-After` (RFC 9110 §10.2.3) in ms: delay-seconds or an HTTP-date; 0 when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined): number {
  if (typeof value !== 'string') return 0;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? 0 : Math.max(0, at - Date.now());
}

/** Wait `ms` on the runtime clock; the exchange being cancelled (client gone, deadline) ends it. */
function pause(ex: Exchange, clock: Clock, ms: number): Promise<void> {
  const signal = ex.signal;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = clock.setTimeout(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      ms,
      undefined,
    );
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
