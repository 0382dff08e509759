/**
 * An upstream's recent attempt outcomes as its breaker saw them: when each ended, whether it
 * succeeded, failed or was refused by the breaker, its label (`503`, `reset`, ...) and latency. The
 * what-if replay (what-if.ts) runs breaker settings against it; the access log carries the same
 * facts, so that a history can be rebuilt from files too (what-if/log-history.ts).
 *
 * Columns of typed arrays, 14 bytes an outcome: they grow by doubling up to `maxEntries`, then turn
 * into a ring; outcomes older than `maxAge` are dropped as new ones arrive. Recording is O(1) and
 * allocates nothing once the arrays have grown. Outcomes that say nothing about the upstream (the
 * client left, meshlet refused for another reason than the breaker) are not kept: the breaker
 * does not count them either.
 */
import type { Attempt } from '../core/attempt.ts';
import type { Clock } from '../core/clock.ts';

/** What an outcome was to the breaker. */
export const SUCCEEDED = 0;
export const FAILED = 1;
/** Refused by the breaker (`circuit_open`): nothing was sent, so its outcome is unknown. */
export const REFUSED = 2;
export type OutcomeClass = typeof SUCCEEDED | typeof FAILED | typeof REFUSED;

export type OutcomeHistorySettings = {
  /** ms; 0: bounded by count only. */
  maxAge: number;
  /** 0: nothing is kept. */
  maxEntries: number;
};

/** A history in time order: what a replay reads. Times are ms on the runtime clock. */
export type HistorySnapshot = {
  upstream: string;
  /** Added to a time, gives wall-clock ms (`Date.now()`'s scale), for people. */
  wallOffset: number;
  /**
   * When the breaker in force was made, on the same clock: its window's buckets turn every
   * window/10 from then, and a replay turns its own at the same times. null when unknown.
   */
  windowOrigin: number | null;
  /** When each attempt ended (its outcome was made), ascending. */
  ends: Float64Array;
  /** OutcomeClass of each. */
  kinds: Uint8Array;
  /** Index of each one's label in `labelTable`. */
  labels: Uint8Array;
  /** ms from sending to the end (0 for refusals). */
  latencies: Float32Array;
  labelTable: string[];
};

const INITIAL_CAPACITY = 1024;
/** Labels are bounded (`success`, `reset`, `timeout`, `connect-failure`, 5xx statuses, `rejected`). */
const MAX_LABELS = 256;
const OTHER_LABEL = 'other';

export class OutcomeHistory {
  readonly upstream: string;
  readonly settings: OutcomeHistorySettings;
  private readonly clock: Clock;
  private readonly wallOffset: number;
  private ends: Float64Array;
  private kinds: Uint8Array;
  private labels: Uint8Array;
  private latencies: Float32Array;
  /** Index of the oldest entry, and how many there are. */
  private head = 0;
  private size = 0;
  private readonly labelTable: string[] = [];
  private readonly labelIndex = new Map<string, number>();

  constructor(upstream: string, settings: OutcomeHistorySettings, clock: Clock) {
    this.upstream = upstream;
    this.settings = settings;
    this.clock = clock;
    this.wallOffset = Date.now() - clock.now();
    const capacity = Math.min(INITIAL_CAPACITY, settings.maxEntries);
    this.ends = new Float64Array(capacity);
    this.kinds = new Uint8Array(capacity);
    this.labels = new Uint8Array(capacity);
    this.latencies = new Float32Array(capacity);
  }

  /** The upstream's outcome listener (bound once). */
  readonly record = (attempt: Attempt): void => {
    let kind: OutcomeClass;
    if (attempt.outcome === 'success') kind = SUCCEEDED;
    else if (attempt.outcome === 'failure') kind = FAILED;
    else if (attempt.failure?.code === 'circuit_open') kind = REFUSED;
    else return;
    const end = attempt.endedAt;
    this.add(end, kind, attempt.label, attempt.sentAt === 0 ? 0 : end - attempt.sentAt);
  };

  /** Keep one outcome; `end` must not be earlier than the last one's. */
  add(end: number, kind: OutcomeClass, label: string, latency: number): void {
    if (this.settings.maxEntries === 0) return;
    this.expire(end);
    let capacity = this.ends.length;
    if (this.size === capacity) {
      if (capacity < this.settings.maxEntries) capacity = this.grow();
      else this.drop(1);
    }
    let i = this.head + this.size;
    if (i >= capacity) i -= capacity;
    this.ends[i] = end;
    this.kinds[i] = kind;
    this.labels[i] = this.labelNumber(label);
    this.latencies[i] = latency;
    this.size++;
  }

  /** The outcomes of the last `maxAge`, oldest first, copied. */
  snapshot(windowOrigin: number | null): HistorySnapshot {
    this.expire(this.clock.now());
    const { ends, kinds, labels, latencies } = this.columns(this.size);
    return { upstream: this.upstream, wallOffset: this.wallOffset, windowOrigin, ends, kinds, labels, latencies, labelTable: [...this.labelTable] };
  }

  /** What GET /breakers shows: how much is kept, and the memory it takes. */
  describe(): { entries: number; capacity: number; bytes: number; maxEntries: number; maxAge: string; oldest: string | null } {
    this.expire(this.clock.now());
    const bytes = this.ends.byteLength + this.kinds.byteLength + this.labels.byteLength + this.latencies.byteLength;
    const oldest = this.size === 0 ? null : new Date(this.ends[this.head]! + this.wallOffset).toISOString();
    return { entries: this.size, capacity: this.ends.length, bytes, maxEntries: this.settings.maxEntries, maxAge: `${this.settings.maxAge}ms`, oldest };
  }

  /** Drop the entries older than `maxAge` before `now`. */
  private expire(now: number): void {
    const maxAge = this.settings.maxAge;
    if (maxAge === 0) return;
    const oldest = now - maxAge;
    const ends = this.ends;
    while (this.size > 0 && ends[this.head]! < oldest) this.drop(1);
  }

  private drop(count: number): void {
    this.head += count;
    if (this.head >= this.ends.length) this.head -= this.ends.length;
    this.size -= count;
  }

  /** Double the columns (up to `maxEntries`), oldest entry first; returns the new capacity. */
  private grow(): number {
    const capacity = Math.min(this.settings.maxEntries, Math.max(1, this.ends.length * 2));
    ({ ends: this.ends, kinds: this.kinds, labels: this.labels, latencies: this.latencies } = this.columns(capacity));
    this.head = 0;
    return capacity;
  }

  /** The entries, oldest first, in new columns of `capacity`. */
  private columns(capacity: number): Pick<HistorySnapshot, 'ends' | 'kinds' | 'labels' | 'latencies'> {
    const columns = { ends: new Float64Array(capacity), kinds: new Uint8Array(capacity), labels: new Uint8Array(capacity), latencies: new Float32Array(capacity) };
    const first = Math.min(this.size, this.ends.length - this.head);
    for (const key of ['ends', 'kinds', 'labels', 'latencies'] as const) {
      const from = this[key];
      const to = columns[key];
      to.set(from.subarray(this.head, this.head + first));
      to.set(from.subarray(0, this.size - first), first);
    }
    return columns;
  }

  private labelNumber(label: string): number {
    const known = this.labelIndex.get(label);
    if (known !== undefined) return known;
    const table = this.labelTable;
    // Never reached with meshlet's labels; should it be, the rest share one.
    const name = table.length < MAX_LABELS - 1 ? label : OTHER_LABEL;
    const index = this.labelIndex.get(name) ?? table.push(name) - 1;
    this.labelIndex.set(name, index);
    return index;
  }
}
