/**
 * One replay: a history's outcomes sent through the real breaker adapter (breaker.ts, opossum
 * included) with one set of settings, on virtual time.
 *
 * Each outcome is an attempt admitted at (end − latency) and recorded at its end; admissions and
 * records are merged in time order, the virtual time moved to each before it happens, so that the
 * window's buckets and the reset timer turn when they would have. A failure is awaited until opossum
 * has decided on it (`recordSettled`), as a live breaker decides before the next I/O event.
 * Attempts the live breaker refused have no known outcome: admitted here, they are recorded as
 * saying nothing (like a client gone), and counted as "admitted, outcome unknown". Admitted as the
 * half-open probe, such an attempt holds the probe's place until the next attempt whose outcome is
 * known (a real probe would be in flight meanwhile, and the others refused): that one decides.
 *
 * Runs in the what-if worker, whose global timers are virtual (virtual-time.ts).
 */
import type { Logger } from 'pino';
import type { Attempt } from '../core/attempt.ts';
import { CircuitBreaker, type BreakerMetrics, type BreakerSettings, type BreakerState } from './breaker.ts';
import { REFUSED, SUCCEEDED, type HistorySnapshot } from './outcome-history.ts';
import type { VirtualTime } from './virtual-time.ts';

/** What became of each attempt in a replay. */
export const ADMITTED = 0;
export const PROBE = 1;
export const REJECTED = 2;

export type ReplayTransition = { at: number; to: BreakerState; reason: string };

export type ReplayResult = {
  /** Per history entry: ADMITTED (while closed), PROBE (the half-open probe) or REJECTED. */
  fates: Uint8Array;
  transitions: ReplayTransition[];
};

/** The attempt as the adapter reads it: its outcome and label, and its identity (the probe). */
type ReplayAttempt = { outcome: Attempt['outcome']; label: string; failure: null };

/**
 * A replay's breaker logs and counts nowhere: its transitions are collected through `onTransition`.
 * (pino and prom-client would add ~80 ms to every replay's start.)
 */
const ignore = (): void => {};
const SILENT = { warn: ignore, info: ignore } as unknown as Logger;
const UNCOUNTED = {
  breakerState: ignore,
  watchBreaker: ignore,
  forgetBreaker: ignore,
  breakerTransitions: { labels: () => ({ inc: ignore }) },
} as unknown as BreakerMetrics;

/** When each entry was admitted: its end less its latency. */
export function admissionTimes(history: HistorySnapshot): Float64Array {
  const { ends, latencies } = history;
  const times = new Float64Array(ends.length);
  for (let i = 0; i < ends.length; i++) times[i] = ends[i]! - latencies[i]!;
  return times;
}

/**
 * Entry indices in order of admission (ties: in order of their ends), to the microsecond: each
 * admission as one number, its microsecond times 2^b plus its index, so that a native numeric sort
 * (5x faster than one with a comparator) orders them. Histories too long for that take the slow way.
 */
export function admissionOrder(admitted: Float64Array): Uint32Array {
  const n = admitted.length;
  const order = new Uint32Array(n);
  if (n === 0) return order;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    min = Math.min(min, admitted[i]!);
    max = Math.max(max, admitted[i]!);
  }
  const slots = 2 ** Math.ceil(Math.log2(n + 1));
  if ((Math.round((max - min) * MICROSECONDS) + 1) * slots > Number.MAX_SAFE_INTEGER) {
    for (let i = 0; i < n; i++) order[i] = i;
    return order.sort((a, b) => admitted[a]! - admitted[b]! || a - b);
  }
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = Math.round((admitted[i]! - min) * MICROSECONDS) * slots + i;
  keys.sort();
  for (let i = 0; i < n; i++) order[i] = keys[i]! % slots;
  return order;
}

const MICROSECONDS = 1_000;

export async function replay(history: HistorySnapshot, settings: BreakerSettings | null, time: VirtualTime, admitted: Float64Array, order: Uint32Array): Promise<ReplayResult> {
  const n = history.ends.length;
  const fates = new Uint8Array(n);
  const transitions: ReplayTransition[] = [];
  if (settings === null || n === 0) return { fates, transitions };
  const { ends, kinds, labels, labelTable } = history;
  time.reset(startTime(admitted[order[0]!]!, history.windowOrigin, settings), history.wallOffset);
  const breaker = new CircuitBreaker(history.upstream, settings, {
    clock: time,
    logger: SILENT,
    metrics: UNCOUNTED,
    onTransition: (to, at, reason) => transitions.push({ at, to, reason }),
  });
  const inFlight: (ReplayAttempt | undefined)[] = new Array(n);
  const spare: ReplayAttempt[] = [];
  let unknownProbe: ReplayAttempt | null = null;
  let next = 0;
  for (let end = 0; end < n; end++) {
    // Every admission up to this end first (an attempt's own comes before its end).
    while (next < n && admitted[order[next]!]! <= ends[end]!) {
      const i = order[next++]!;
      time.advanceTo(admitted[i]!);
      if (unknownProbe !== null && kinds[i] !== REFUSED) {
        unknownProbe.outcome = 'ignored';
        breaker.record(unknownProbe as unknown as Attempt);
        unknownProbe = null;
      }
      const attempt = spare.pop() ?? { outcome: 'pending', label: '', failure: null };
      const halfOpen = breaker.state === 'half_open';
      if (breaker.admit(attempt as unknown as Attempt) !== null) {
        fates[i] = REJECTED;
        spare.push(attempt);
        continue;
      }
      fates[i] = halfOpen ? PROBE : ADMITTED;
      if (kinds[i] === REFUSED && halfOpen) {
        unknownProbe = attempt;
      } else if (kinds[i] === REFUSED) {
        // Refused live: what it would have come to is unknown; it says nothing, like a client gone.
        attempt.outcome = 'ignored';
        breaker.record(attempt as unknown as Attempt);
        spare.push(attempt);
      } else {
        attempt.outcome = 'pending';
        inFlight[i] = attempt;
      }
    }
    const attempt = inFlight[end];
    if (attempt === undefined) continue;
    inFlight[end] = undefined;
    time.advanceTo(ends[end]!);
    attempt.label = labelTable[labels[end]!] ?? '';
    if (kinds[end] === SUCCEEDED) {
      attempt.outcome = 'success';
      breaker.record(attempt as unknown as Attempt);
    } else {
      attempt.outcome = 'failure';
      await breaker.recordSettled(attempt as unknown as Attempt);
    }
    spare.push(attempt);
  }
  breaker.close();
  return { fates, transitions };
}

/**
 * Where the replay's breaker starts: at the first admission, moved back to the bucket boundary the
 * breaker in force had there (its buckets turn every window/10 from `windowOrigin`).
 */
function startTime(first: number, windowOrigin: number | null, settings: BreakerSettings): number {
  const tick = Math.max(1, Math.floor(settings.window / 10));
  if (windowOrigin === null || windowOrigin > first) return first;
  return first - ((first - windowOrigin) % tick);
}
