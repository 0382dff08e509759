/**
 * Time as policies see it. Windows, backoff, budgets, ejection and deadlines read the runtime's clock,
 * never `Date.now()` or the global timers, so that tests drive time instead of sleeping.
 */

/** A timer the clock made; cancel it with the same clock. */
export type ClockTimer = { unref?(): unknown };

export interface Clock {
  /** Milliseconds on a monotonic scale (only differences mean anything). */
  now(): number;
  /** Call `callback(argument)` once, `ms` from now. The argument avoids a closure per call. */
  setTimeout<T>(callback: (argument: T) => void, ms: number, argument: T): ClockTimer;
  clearTimeout(timer: ClockTimer): void;
}

/** The real clock: `performance.now()` and Node's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, ms, argument) => setTimeout(callback, ms, argument),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};
