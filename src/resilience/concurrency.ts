/**
 * Load shedding: at most `max` requests in flight on a listener, the rest get 503 `overloaded` at once
 * instead of queueing without bound; and, once the listener is busy (half its slots taken), at most
 * `maxPerSource` of them from any one source, whose requests beyond get 429 `source_limited`, so that
 * one caller (slow uploads from one host, say) cannot lock every other out. While half the slots are
 * free, one source may use them: a gateway in front of the primary is a single source, and a heavy
 * caller alone deserves the capacity nobody else wants.
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Handler, Layer, Send, Stage } from '../core/stage.ts';

/** Sources with nothing in flight remembered (at 0) beyond `max` before they are swept. */
const IDLE_SOURCES_KEPT = 1024;

export class ConcurrencyLimit {
  inFlight = 0;
  readonly max: number;
  readonly maxPerSource: number;
  /**
   * Requests in flight by source. A source with none keeps its entry (at 0) until the map reaches
   * `sweepAt` sources: deleting it at each release made V8 shrink the map's table, and grow it again at
   * the next request, two table copies per request, allocated in old space once the map lived there
   * (~150 B a request of old-space garbage, a mark-compact every ~90 s at 1,000 req/s).
   */
  private readonly bySource = new Map<string, number>();
  private readonly sweepAt: number;

  /** From this many requests in flight on, each source is held to its share. */
  readonly busyAt: number;

  constructor(max: number, sourceShare = 1) {
    this.max = max;
    this.maxPerSource = Math.max(1, Math.floor(max * sourceShare));
    this.busyAt = Math.ceil(max / 2);
    this.sweepAt = max + IDLE_SOURCES_KEPT;
  }

  readonly stage: Stage = (next: Handler): Handler => {
    const limit = this;
    const perSource = limit.maxPerSource < limit.max;
    // The slot is the exchange's to give back when it finishes (`Exchange.slot`, released by the
    // listener): no promise, reaction or closure per request to watch for the end.
    return function limitConcurrency(ex: Exchange): Promise<void> {
      if (limit.inFlight >= limit.max) {
        return Promise.reject(new MeshletError('overloaded', `more than ${limit.max} requests in flight`, { retryAfter: 1 }));
      }
      if (perSource && !limit.admit(ex.head.source)) {
        return Promise.reject(
          new MeshletError('source_limited', `this client holds its share (${limit.maxPerSource}) of a busy listener's requests`, { retryAfter: 1 }),
        );
      }
      limit.inFlight++;
      ex.slot = limit;
      return next(ex);
    };
  };

  /** The exchange finished: give its slot back, and its source's. */
  release(ex: Exchange): void {
    this.inFlight--;
    if (this.maxPerSource >= this.max) return;
    const source = ex.head.source;
    const held = this.bySource.get(source);
    if (held !== undefined && held > 0) this.bySource.set(source, held - 1);
  }

  /** Sources seen (with requests in flight or not); for tests. */
  get sources(): number {
    return this.bySource.size;
  }

  private admit(source: string): boolean {
    const held = this.bySource.get(source);
    if (held === undefined) {
      if (this.bySource.size >= this.sweepAt) this.sweepIdleSources();
      this.bySource.set(source, 1);
      return true;
    }
    if (held >= this.maxPerSource && this.inFlight >= this.busyAt) return false;
    this.bySource.set(source, held + 1);
    return true;
  }

  /** Forget the sources with nothing in flight: at most `max` remain. */
  private sweepIdleSources(): void {
    for (const [source, held] of this.bySource) if (held === 0) this.bySource.delete(source);
  }
}

/**
 * An upstream's own concurrency limit (`limits.maxConcurrentRequests` of its policy): checked once per
 * request, at its first attempt, against the requests routed to it now (`inFlight`, which counts this
 * one); beyond it, 503 `overloaded`, and nothing is sent.
 */
export function upstreamConcurrency(max: number, inFlight: { readonly value: number }, upstream: string): Layer {
  return (next: Send): Send =>
    function limitUpstreamConcurrency(attempt) {
      if (attempt.resendCount === 0 && inFlight.value > max) {
        return Promise.reject(attempt.refuse(new MeshletError('overloaded', `more than ${max} requests in flight to ${upstream}`, { retryAfter: 1 })));
      }
      return next(attempt);
    };
}
