/**
 * A clock that moves only when the test says so: `advance(ms)` runs, in order, every timer that falls
 * due. Policies read time only through the runtime's clock, so tests drive it instead of sleeping.
 */
import type { Clock, ClockTimer } from '../../src/core/clock.ts';

type Timer = ClockTimer & { due: number; run: () => void; cancelled: boolean };

export class FakeClock implements Clock {
  private time = 1_000;
  private timers: Timer[] = [];

  now(): number {
    return this.time;
  }

  setTimeout<T>(callback: (argument: T) => void, ms: number, argument: T): ClockTimer {
    const timer: Timer = { due: this.time + ms, run: () => callback(argument), cancelled: false };
    this.timers.push(timer);
    return timer;
  }

  clearTimeout(timer: ClockTimer): void {
    (timer as Timer).cancelled = true;
  }

  /** Timers armed and not yet run or cancelled. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Move time forward by `ms`, running each timer that falls due at its own time. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const next = this.timers.filter((t) => !t.cancelled && t.due <= until).sort((a, b) => a.due - b.due)[0];
      if (next === undefined) break;
      this.time = next.due;
      next.cancelled = true;
      next.run();
    }
    this.time = until;
    this.timers = this.timers.filter((t) => !t.cancelled);
  }
}
