/**
 * Time that moves only when the what-if replay says so: meshlet's Clock for the breaker's window,
 * and, once `takeOverGlobals()` is called, the global `setTimeout`, `clearTimeout` and `Date.now`
 * that opossum's reset timer reads. Taking over the globals is for the replay's worker thread only
 * (what-if-worker.ts): a sidecar's own event loop must never run on virtual time.
 */
import type { Clock, ClockTimer } from '../core/clock.ts';

type VirtualTimer = ClockTimer & { due: number; order: number; run: (argument: unknown) => void; argument: unknown; cancelled: boolean };

export class VirtualTime implements Clock {
  private time = 0;
  /** Timers armed, by due time then order armed; a breaker keeps at most two. */
  private timers: VirtualTimer[] = [];
  private armed = 0;
  private wallOffset = 0;

  now(): number {
    return this.time;
  }

  setTimeout<T>(callback: (argument: T) => void, ms: number, argument: T): ClockTimer {
    const timer: VirtualTimer = {
      due: this.time + Math.max(0, ms),
      order: this.armed++,
      run: callback as (argument: unknown) => void,
      argument,
      cancelled: false,
      unref: () => timer,
    };
    let at = this.timers.length;
    while (at > 0 && this.timers[at - 1]!.due > timer.due) at--;
    this.timers.splice(at, 0, timer);
    return timer;
  }

  clearTimeout(timer: ClockTimer): void {
    (timer as VirtualTimer).cancelled = true;
  }

  /** Start again at `time`, with no timer armed; `wallOffset` maps it to `Date.now()`'s scale. */
  reset(time: number, wallOffset: number): void {
    this.time = time;
    this.timers = [];
    this.wallOffset = wallOffset;
  }

  /** Move to `time`, running each timer that falls due on the way, at its own time. */
  advanceTo(time: number): void {
    const timers = this.timers;
    while (timers.length > 0 && timers[0]!.due <= time) {
      const timer = timers.shift()!;
      if (timer.cancelled) continue;
      if (timer.due > this.time) this.time = timer.due;
      timer.run(timer.argument);
    }
    if (time > this.time) this.time = time;
  }

  /**
   * Make the global timers and `Date.now` this virtual time (opossum's `resetTimeout` timer and its
   * timestamps). Only in a thread that does nothing else.
   */
  takeOverGlobals(): void {
    const realClear = globalThis.clearTimeout;
    const virtual = this;
    globalThis.setTimeout = function setVirtualTimeout(callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) {
      return virtual.setTimeout(() => callback(...args), ms ?? 0, undefined);
    } as unknown as typeof globalThis.setTimeout;
    globalThis.clearTimeout = function clearVirtualTimeout(timer: unknown) {
      if (typeof timer === 'object' && timer !== null && 'due' in timer) virtual.clearTimeout(timer as VirtualTimer);
      else realClear(timer as NodeJS.Timeout);
    } as typeof globalThis.clearTimeout;
    Date.now = () => Math.floor(virtual.time + virtual.wallOffset);
  }
}
