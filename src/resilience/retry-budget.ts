/**
 * A retry budget, as Linkerd's: retries may add at most `ratio` of the requests made in the last
 * `window`, plus `minPerSecond` so that a quiet upstream can still be retried. However hard an
 * upstream fails, attempts stay within (1 + ratio) x requests + minPerSecond x seconds: retries can
 * never multiply an outage.
 *
 * Time comes from the runtime's clock; the window is 10 buckets turned lazily when time is read (no
 * timer). The `minPerSecond` allowance accrues continuously from zero and is capped at one window's
 * worth, so an idle period cannot bank a burst of retries.
 */
import type { Clock } from '../core/clock.ts';

const BUCKETS = 10;

export type BudgetSettings = { ratio: number; minPerSecond: number; window: number };

export class RetryBudget {
  private readonly settings: BudgetSettings;
  private readonly clock: Clock;
  private readonly bucketMs: number;
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  /** Sums over the buckets, kept current. */
  private requestsInWindow = 0;
  private retriesInWindow = 0;
  /** Index (time / bucketMs) of the current bucket. */
  private turn: number;
  private minTokens = 0;
  private minUpdatedAt: number;

  constructor(settings: BudgetSettings, clock: Clock) {
    this.settings = settings;
    this.clock = clock;
    this.bucketMs = Math.max(1, settings.window / BUCKETS);
    const now = clock.now();
    this.turn = Math.floor(now / this.bucketMs);
    this.minUpdatedAt = now;
  }

  /** A request was made (its first attempt): it adds `ratio` to what retries may spend. */
  deposit(): void {
    this.advance(this.clock.now());
    this.requests[this.turn % BUCKETS]!++;
    this.requestsInWindow++;
  }

  /** Take one retry from the budget; false when it is spent. */
  withdraw(): boolean {
    const now = this.clock.now();
    this.advance(now);
    if (this.retriesInWindow < this.settings.ratio * this.requestsInWindow) {
      this.retries[this.turn % BUCKETS]!++;
      this.retriesInWindow++;
      return true;
    }
    this.accrueMinimum(now);
    if (this.minTokens >= 1) {
      this.minTokens--;
      return true;
    }
    return false;
  }

  private accrueMinimum(now: number): void {
    const { minPerSecond, window } = this.settings;
    const cap = (minPerSecond * window) / 1000;
    this.minTokens = Math.min(cap, this.minTokens + ((now - this.minUpdatedAt) / 1000) * minPerSecond);
    this.minUpdatedAt = now;
  }

  /** Empty the buckets that time has left behind. */
  private advance(now: number): void {
    const turn = Math.floor(now / this.bucketMs);
    if (turn === this.turn) return;
    const passed = Math.min(BUCKETS, turn - this.turn);
    for (let i = 1; i <= passed; i++) {
      const index = (this.turn + i) % BUCKETS;
      this.requestsInWindow -= this.requests[index]!;
      this.retriesInWindow -= this.retries[index]!;
      this.requests[index] = 0;
      this.retries[index] = 0;
    }
    this.turn = turn;
  }
}
