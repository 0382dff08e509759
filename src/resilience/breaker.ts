/**
 * Circuit breakers: opossum behind one adapter, with typed states and meshlet's own errors.
 *
 * opossum decides (its rolling window, `volumeThreshold`, `errorThresholdPercentage`, `resetTimeout`
 * and half-open), but it never wraps the call itself. Its sharp edges are kept out this way:
 * - its `timeout` does not cancel anything: off; meshlet's deadlines and AbortSignal cancel;
 * - an outcome is known only when an attempt ends (a stream may break minutes after its head), so the
 *   adapter admits an attempt itself (`admit`) and hands opossum the outcome once made (`record`): a
 *   failure as one `fire()` that rejects, so that opossum's own check decides whether to open; a
 *   success as the two events opossum's `fire()` would emit (`fire`, `success`), which its window
 *   counts and on which it closes from half-open: the same counting without a promise per request;
 * - outcomes that say nothing about the upstream (client gone, meshlet's own rejections) are never
 *   given to opossum, so they count neither way; nor are outcomes that arrive while it is not closed,
 *   except the half-open probe's: every admitted attempt is counted once, in the state it was sent in;
 * - half-open admits exactly one probe (meshlet holds the slot until the probe's outcome);
 * - its rolling window turns on meshlet's clock (`rotateBucketController`), not a timer per breaker,
 *   and with latency percentiles off (they keep every latency and sort them all at each failure);
 * - the window is emptied when the breaker closes, as Hystrix and Resilience4j do: the failures that
 *   opened it must not re-open it at the first failure after recovery.
 * `resetTimeout` runs on opossum's own (real) timer.
 *
 * The what-if replay (what-if.ts) runs this same adapter on virtual time: it awaits `recordSettled`
 * so that each failure's decision is made before the next event, and reads transitions through
 * `onTransition`.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import OpossumBreaker from 'opossum';
import type { Attempt } from '../core/attempt.ts';
import type { Clock, ClockTimer } from '../core/clock.ts';
import { MeshletError } from '../core/errors.ts';
import type { Layer, Send } from '../core/stage.ts';

export type BreakerState = 'closed' | 'open' | 'half_open';
export const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half_open'];

export type BreakerSettings = {
  errorThresholdPercentage: number;
  volumeThreshold: number;
  /** ms */
  window: number;
  /** ms */
  resetTimeout: number;
  /** Failures that count: `retryOn`'s vocabulary, plus `5xx` for every 5xx status. */
  failureOn: readonly string[];
};

export type Transition = { to: BreakerState; at: string; reason: string };

/** Where a breaker reports itself (telemetry/resilience-metrics.ts implements it). */
export interface BreakerMetrics {
  /** Set the one-hot state gauge. */
  breakerState(upstream: string, state: BreakerState): void;
  readonly breakerTransitions: { labels(upstream: string, to: string): { inc(): void } };
  /** Read the breaker's window and settings at scrape time, until `forgetBreaker`. */
  watchBreaker(breaker: CircuitBreaker): void;
  forgetBreaker(breaker: CircuitBreaker): void;
}

export type BreakerDeps = {
  clock: Clock;
  logger: Logger;
  metrics: BreakerMetrics;
  /** Told of every transition shown, with the clock's time (the what-if replay collects them). */
  onTransition?: (to: BreakerState, at: number, reason: string) => void;
};

/** Buckets in the rolling window (opossum's default). */
const BUCKETS = 10;
const STATUS_5XX = /^5\d\d$/;

/** opossum's action: the outcome is already known when it is handed over. */
const FAILED = new Error('counted failure');
const REJECTED = Promise.reject(FAILED);
REJECTED.catch(ignore);
const RESOLVED = Promise.resolve();
function recordOutcome(failed: boolean): Promise<void> {
  return failed ? REJECTED : RESOLVED;
}
function ignore(): void {}
const NO_ARGS: readonly unknown[] = [];

export class CircuitBreaker {
  readonly upstream: string;
  readonly settings: BreakerSettings;
  /** Set by an operator (POST /breakers/NAME/open|close) until released or reloaded. */
  forced: 'open' | 'closed' | null = null;
  lastTransition: Transition | null = null;
  private readonly opossum: OpossumBreaker<[boolean], void>;
  private readonly rotation = new EventEmitter();
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics: BreakerMetrics;
  private readonly failureLabels: ReadonlySet<string>;
  private readonly every5xx: boolean;
  private rotationTimer: ClockTimer | null = null;
  /** When the window's next bucket starts, on the clock: buckets turn at fixed times from `createdAt`. */
  private nextRotation: number;
  private readonly onTransition: BreakerDeps['onTransition'];
  /** The half-open probe in flight. */
  private probe: Attempt | null = null;
  private openedAt = 0;
  /** Why the next transition happens, when meshlet causes it. */
  private cause: string | null = null;
  /** When it was made, on the clock: its window's buckets turn every window/10 from then. */
  readonly createdAt: number;

  constructor(upstream: string, settings: BreakerSettings, deps: BreakerDeps) {
    this.upstream = upstream;
    this.settings = settings;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.onTransition = deps.onTransition;
    this.createdAt = this.nextRotation = deps.clock.now();
    this.failureLabels = new Set(settings.failureOn);
    this.every5xx = this.failureLabels.has('5xx');
    this.opossum = new OpossumBreaker(recordOutcome, {
      name: upstream,
      timeout: false,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      volumeThreshold: settings.volumeThreshold,
      resetTimeout: settings.resetTimeout,
      rollingCountTimeout: settings.window,
      rollingCountBuckets: BUCKETS,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: this.rotation,
    });
    this.opossum.on('open', () => this.transition('open'));
    this.opossum.on('halfOpen', () => this.transition('half_open'));
    this.opossum.on('close', () => this.transition('closed'));
    this.metrics.breakerState(upstream, 'closed');
    this.metrics.watchBreaker(this);
    this.armRotation();
  }

  get state(): BreakerState {
    if (this.forced !== null) return this.forced === 'open' ? 'open' : 'closed';
    return this.opossum.closed ? 'closed' : this.opossum.halfOpen ? 'half_open' : 'open';
  }

  /**
   * Whether `attempt` may be sent: null, or the `circuit_open` error to refuse it with. In half-open,
   * the first attempt becomes the probe and every other is refused until its outcome is known.
   */
  admit(attempt: Attempt): MeshletError | null {
    if (this.forced === 'closed') return null;
    if (this.forced === 'open') return this.openError(this.settings.resetTimeout);
    const opossum = this.opossum;
    if (opossum.closed) return null;
    if (opossum.halfOpen && this.probe === null) {
      this.probe = attempt;
      return null;
    }
    return this.openError(opossum.halfOpen ? 1_000 : this.openedAt + this.settings.resetTimeout - this.clock.now());
  }

  /** Whether a retry may be sent now: never into an open breaker, nor to take the half-open probe. */
  allowsRetry(): boolean {
    return this.forced === 'closed' || (this.forced === null && this.opossum.closed);
  }

  /** Read an attempt's outcome (the upstream's outcome listener). */
  record(attempt: Attempt): void {
    this.count(attempt);
  }

  /**
   * `record`, resolving once opossum has decided on the outcome: a failure's `fire()` settles after
   * opossum's check whether to open. For the what-if replay, which must see a transition before the
   * next event, as a live breaker does (the check runs in microtasks, before the next I/O event).
   */
  recordSettled(attempt: Attempt): Promise<void> {
    return this.count(attempt);
  }

  private count(attempt: Attempt): Promise<void> {
    const counted = this.counts(attempt);
    if (attempt === this.probe) {
      this.probe = null;
      // A probe that said nothing (its client left) leaves the breaker half-open for the next one.
      if (counted === null || this.forced !== null) return RESOLVED;
      if (counted) this.cause = `the half-open probe failed (${attempt.label})`;
      else this.cause = 'the half-open probe succeeded';
      return this.fire(counted);
    }
    if (counted === null || this.forced !== null || !this.opossum.closed) return RESOLVED;
    return this.fire(counted);
  }

  /**
   * Force a state (incident response) until `release()` or a reload of the upstream. Forced open is
   * an overlay: opossum's own state and window stay as they were (nothing is sent, so nothing is
   * counted) and come back on release. Forced closed closes opossum too, and counts nothing meanwhile.
   */
  force(state: 'open' | 'closed', reason: string): void {
    this.forced = state;
    this.cause = reason;
    if (state === 'closed' && !this.opossum.closed) this.opossum.close();
    else this.transition(state);
  }

  /** Back to the breaker's own judgement, from the state opossum is in. */
  release(): void {
    if (this.forced === null) return;
    this.forced = null;
    this.cause = 'released by an operator or a reload';
    this.transition(this.state);
  }

  /** Counted outcomes in the current window, as GET /breakers and the metrics show them. */
  window(): { requests: number; failures: number; errorPercentage: number } {
    const stats = this.opossum.stats;
    const requests = stats.fires;
    return { requests, failures: stats.failures, errorPercentage: requests === 0 ? 0 : Math.round((stats.failures / requests) * 1000) / 10 };
  }

  describe(): object {
    const { window, resetTimeout, ...rest } = this.settings;
    return {
      upstream: this.upstream,
      state: this.state,
      forced: this.forced !== null,
      window: this.window(),
      settings: { ...rest, window: `${window}ms`, resetTimeout: `${resetTimeout}ms` },
      lastTransition: this.lastTransition,
    };
  }

  close(): void {
    if (this.rotationTimer !== null) this.clock.clearTimeout(this.rotationTimer);
    this.rotationTimer = null;
    this.metrics.forgetBreaker(this);
    this.opossum.shutdown();
  }

  /** true: a failure the breaker counts; false: a success; null: says nothing about the upstream. */
  private counts(attempt: Attempt): boolean | null {
    if (attempt.outcome === 'success') return false;
    if (attempt.outcome !== 'failure') return null;
    const label = attempt.label;
    return this.failureLabels.has(label) || (this.every5xx && STATUS_5XX.test(label));
  }

  private fire(failed: boolean): Promise<void> {
    if (failed) return this.opossum.fire(true).then(undefined, ignore);
    this.opossum.emit('fire', NO_ARGS);
    this.opossum.emit('success', undefined, 0);
    return RESOLVED;
  }

  private openError(msLeft: number): MeshletError {
    const seconds = Math.max(1, Math.ceil(msLeft / 1000));
    return new MeshletError('circuit_open', `the circuit breaker of ${this.upstream} is open`, { retryAfter: seconds });
  }

  private transition(to: BreakerState): void {
    // While forced, opossum's own moves (its reset timer) are not shown: the forced state holds.
    if (this.forced !== null && this.cause === null) return;
    const shown = this.state;
    if (to === 'open' && this.forced === null) this.openedAt = this.clock.now();
    if (to === 'closed' && this.forced === null) this.emptyWindow();
    const reason = this.cause ?? this.defaultReason(to);
    this.cause = null;
    this.lastTransition = { to: shown, at: new Date().toISOString(), reason };
    this.onTransition?.(shown, this.clock.now(), reason);
    this.metrics.breakerState(this.upstream, shown);
    this.metrics.breakerTransitions.labels(this.upstream, shown).inc();
    const fields = { upstream: this.upstream, state: shown, reason };
    if (shown === 'open') this.logger.warn(fields, 'circuit breaker opened');
    else this.logger.info(fields, shown === 'closed' ? 'circuit breaker closed' : 'circuit breaker half-open');
  }

  private defaultReason(to: BreakerState): string {
    if (to === 'half_open') return `resetTimeout (${this.settings.resetTimeout}ms) passed: one probe may go`;
    if (to === 'closed') return 'closed';
    const { requests, failures, errorPercentage } = this.window();
    return `${failures} of ${requests} counted attempts failed (${errorPercentage}%) in the window, over ${this.settings.errorThresholdPercentage}%`;
  }

  private emptyWindow(): void {
    for (let i = 0; i < BUCKETS; i++) this.rotation.emit('rotate');
  }

  /**
   * Buckets turn at fixed times (`createdAt` + k × window/10), not window/10 after the last turn: late
   * timers do not add up, so the window's boundaries stay where a replay can put them too.
   */
  private armRotation(): void {
    this.nextRotation += Math.max(1, Math.floor(this.settings.window / BUCKETS));
    const timer = this.clock.setTimeout(rotate, Math.max(0, this.nextRotation - this.clock.now()), this);
    timer.unref?.();
    this.rotationTimer = timer;
  }

  /** @internal the rotation timer's callback */
  rotateWindow(): void {
    this.rotation.emit('rotate');
    this.armRotation();
  }
}

function rotate(breaker: CircuitBreaker): void {
  breaker.rotateWindow();
}

/**
 * The layer that asks the upstream's breaker before each attempt: refused attempts get 503
 * `circuit_open` with `Retry-After`, and nothing is sent upstream.
 */
export function guardByBreaker(breaker: CircuitBreaker | null): Layer {
  return (next: Send): Send => {
    if (breaker === null) return next;
    return function admitThroughBreaker(attempt) {
      const refused = breaker.admit(attempt);
      if (refused !== null) return Promise.reject(attempt.refuse(refused));
      return next(attempt);
    };
  };
}
