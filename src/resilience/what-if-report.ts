/**
 * What a replay means to an SRE: when the breaker opened and closed, what it refused that would
 * have succeeded (false trips), the failures it let through, how long it took to react.
 *
 * Definitions (docs/tuning-breakers.md repeats them):
 * - the onset of the outage behind an opening at T (from closed) is the earliest failure F, after the
 *   previous closing, from which failures were at least half of the known outcomes at every moment
 *   up to T (so neither a stray failure long before nor a heavy burst reaching back over successes
 *   moves it); "onset to open" is T − F;
 * - the recovery behind a closing at C is, likewise, the earliest success R of an attempt sent after
 *   the opening from which successes were more than half of the known outcomes at every moment up
 *   to C; "recovery to close" is C − R;
 * - both look back over known outcomes only, up to the last attempt the live breaker refused: what
 *   happened while it was open is unknown. For the settings in force, whose open periods are all
 *   refusals, a closing's recovery is therefore its successful probe (0 ms): the replay cannot
 *   know when the upstream came back before that;
 * - a false trip is an attempt the breaker refused whose recorded outcome was a success;
 * - a failure let through is an attempt admitted while closed whose recorded outcome was a failure;
 * - "admitted, outcome unknown": an attempt the live breaker refused and this one would have let
 *   through: nobody knows what it would have come to. Such a probe holds its place (the others are
 *   refused) until the next attempt whose outcome is known, which then goes as the probe: in
 *   effect, the next known outcome decides.
 * - probes are the half-open probes whose outcome is known.
 * Outcomes are successes and failures as meshlet recorded them (any failure: not only those
 * `failureOn` counts), so that both settings are measured against the same events.
 */
import type { BreakerSettings, BreakerState } from './breaker.ts';
import { FAILED, REFUSED, SUCCEEDED, type HistorySnapshot } from './outcome-history.ts';
import { ADMITTED, PROBE, REJECTED, type ReplayResult } from './replay.ts';

export type Period = {
  openedAt: string;
  closedAt: string | null;
  /** ms from the history's start. */
  openedMs: number;
  closedMs: number | null;
  onsetToOpenMs: number | null;
  recoveryToCloseMs: number | null;
};

export type RunReport = {
  /** The settings replayed (durations in ms); null: no breaker. */
  settings: BreakerSettings | null;
  transitions: { at: string; ms: number; to: BreakerState; reason: string }[];
  /** Each time it opened from closed, until it closed again. */
  periods: Period[];
  rejected: number;
  falseTrips: number;
  /** Refused here and by the live breaker: unknown either way. */
  rejectedUnknown: number;
  failuresLetThrough: number;
  admittedUnknown: number;
  /** When the first "admitted, outcome unknown" happened (ms from start): what follows is an estimate. */
  firstUnknownMs: number | null;
  probes: number;
  /** State bands for the picture: [fromMs, toMs, state]. */
  states: [number, number, BreakerState][];
  /** Refused attempts per timeline bucket. */
  rejectedPerBucket: number[];
};

export type WhatIfReport = {
  upstream: string;
  from: string | null;
  to: string | null;
  durationMs: number;
  outcomes: { total: number; succeeded: number; failed: number; refusedByBreaker: number };
  inForce: RunReport;
  candidate: RunReport;
  timeline: { bucketMs: number; succeeded: number[]; failed: number[]; errorPercent: (number | null)[] };
  notes: string[];
};

const BUCKET_CHOICES = [10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000];
const MAX_BUCKETS = 240;

export function buildReport(history: HistorySnapshot, admitted: Float64Array, inForce: [BreakerSettings | null, ReplayResult], candidate: [BreakerSettings | null, ReplayResult]): WhatIfReport {
  const { ends, kinds } = history;
  const n = ends.length;
  const start = n === 0 ? 0 : Math.min(ends[0]!, admitted.reduce((a, b) => Math.min(a, b), Infinity));
  const end = n === 0 ? 0 : ends[n - 1]!;
  const span = end - start;
  const bucketMs = BUCKET_CHOICES.find((ms) => span / ms <= MAX_BUCKETS) ?? Math.ceil(span / MAX_BUCKETS);
  const buckets = Math.max(1, Math.ceil(span / bucketMs) + (span % bucketMs === 0 ? 1 : 0));
  const succeeded = new Array<number>(buckets).fill(0);
  const failed = new Array<number>(buckets).fill(0);
  const count = { total: n, succeeded: 0, failed: 0, refusedByBreaker: 0 };
  for (let i = 0; i < n; i++) {
    const b = Math.min(buckets - 1, Math.floor((ends[i]! - start) / bucketMs));
    if (kinds[i] === SUCCEEDED) (count.succeeded++, succeeded[b]!++);
    else if (kinds[i] === FAILED) (count.failed++, failed[b]!++);
    else count.refusedByBreaker++;
  }
  const errorPercent = succeeded.map((s, b) => (s + failed[b]! === 0 ? null : Math.round((failed[b]! / (s + failed[b]!)) * 1000) / 10));
  const context = { history, admitted, start, end, bucketMs, buckets };
  const runs = { inForce: runReport(context, ...inForce), candidate: runReport(context, ...candidate) };
  const wall = (ms: number) => new Date(ms + history.wallOffset).toISOString();
  return {
    upstream: history.upstream,
    from: n === 0 ? null : wall(start),
    to: n === 0 ? null : wall(end),
    durationMs: round(span),
    outcomes: count,
    ...runs,
    timeline: { bucketMs, succeeded, failed, errorPercent },
    notes: n === 0 ? [] : notes(count, runs, wall(start)),
  };
}

type Context = { history: HistorySnapshot; admitted: Float64Array; start: number; end: number; bucketMs: number; buckets: number };

function runReport(context: Context, settings: BreakerSettings | null, result: ReplayResult): RunReport {
  const { history, admitted, start, end, bucketMs, buckets } = context;
  const { kinds } = history;
  const { fates, transitions } = result;
  const wall = (ms: number) => new Date(ms + history.wallOffset).toISOString();
  const report: RunReport = {
    settings,
    transitions: transitions.map((t) => ({ at: wall(t.at), ms: round(t.at - start), to: t.to, reason: t.reason })),
    periods: periods(context, result),
    rejected: 0,
    falseTrips: 0,
    rejectedUnknown: 0,
    failuresLetThrough: 0,
    admittedUnknown: 0,
    firstUnknownMs: null,
    probes: 0,
    states: states(transitions, start, end),
    rejectedPerBucket: new Array<number>(buckets).fill(0),
  };
  for (let i = 0; i < fates.length; i++) {
    const fate = fates[i];
    const kind = kinds[i];
    if (fate === REJECTED) {
      report.rejected++;
      report.rejectedPerBucket[Math.min(buckets - 1, Math.floor((admitted[i]! - start) / bucketMs))]!++;
      if (kind === SUCCEEDED) report.falseTrips++;
      else if (kind === REFUSED) report.rejectedUnknown++;
      continue;
    }
    if (fate === PROBE && kind !== REFUSED) report.probes++;
    if (kind === REFUSED) {
      report.admittedUnknown++;
      report.firstUnknownMs ??= round(admitted[i]! - start);
    } else if (kind === FAILED && fate === ADMITTED) report.failuresLetThrough++;
  }
  return report;
}

/** Open periods: from each opening out of closed to the next closing, with reaction times. */
function periods(context: Context, result: ReplayResult): Period[] {
  const { history, start } = context;
  const wall = (ms: number) => new Date(ms + history.wallOffset).toISOString();
  const found: Period[] = [];
  let state: BreakerState = 'closed';
  let lastClosed = -Infinity;
  let open: Period | null = null;
  let openedAt = 0;
  for (const t of result.transitions) {
    if (t.to === 'open' && state === 'closed') {
      openedAt = t.at;
      const onset = onsetBefore(history, t.at, lastClosed);
      open = { openedAt: wall(t.at), closedAt: null, openedMs: round(t.at - start), closedMs: null, onsetToOpenMs: onset === null ? null : round(t.at - onset), recoveryToCloseMs: null };
      found.push(open);
    } else if (t.to === 'closed' && open !== null) {
      const recovery = recoveryBefore(history, context.admitted, t.at, openedAt);
      open.closedAt = wall(t.at);
      open.closedMs = round(t.at - start);
      open.recoveryToCloseMs = recovery === null ? null : round(t.at - recovery);
      open = null;
      lastClosed = t.at;
    }
    state = t.to;
  }
  return found;
}

/** The onset of an outage before an opening at `at` (see above), after `after`; null: none found. */
function onsetBefore(history: HistorySnapshot, at: number, after: number): number | null {
  return earliestHeldSince(history, null, at, after, FAILED, 0);
}

/** The recovery before a closing at `at` (see above), among attempts sent after the opening at `after`. */
function recoveryBefore(history: HistorySnapshot, admitted: Float64Array, at: number, after: number): number | null {
  return earliestHeldSince(history, admitted, at, after, SUCCEEDED, 1);
}

/**
 * The end of the earliest outcome of `kind`, ending in (after, at] and after the last one the live
 * breaker refused, from which outcomes of `kind` outnumbered the others by at least `margin` at
 * every moment up to `at`. Scanning back:
 * `lead` is (kind − others) from entry i to `at`; a start qualifies when `lead` there is at least
 * `margin` over its largest value at any later start (the lead over [i, X] is the difference).
 */
function earliestHeldSince(history: HistorySnapshot, sentAfter: Float64Array | null, at: number, after: number, kind: number, margin: number): number | null {
  const { ends, kinds } = history;
  let lead = 0;
  let mostLater = 0;
  let found: number | null = null;
  for (let i = lastEndingBy(ends, at); i >= 0 && ends[i]! > after; i--) {
    // Nothing is known of what the live breaker refused: the span is not bridged.
    if (kinds[i] === REFUSED) break;
    if (sentAfter !== null && sentAfter[i]! <= after) continue;
    mostLater = Math.max(mostLater, lead);
    lead += kinds[i] === kind ? 1 : -1;
    if (kinds[i] === kind && lead - mostLater >= margin) found = ends[i]!;
  }
  return found;
}

/** Index of the last entry that ended at or before `at` (-1: none). */
function lastEndingBy(ends: Float64Array, at: number): number {
  let low = 0;
  let high = ends.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (ends[mid]! <= at) low = mid + 1;
    else high = mid;
  }
  return low - 1;
}

function states(transitions: ReplayResult['transitions'], start: number, end: number): [number, number, BreakerState][] {
  const bands: [number, number, BreakerState][] = [];
  let from = start;
  let state: BreakerState = 'closed';
  for (const t of transitions) {
    if (t.at > from) bands.push([round(from - start), round(t.at - start), state]);
    from = Math.max(from, t.at);
    state = t.to;
  }
  if (end > from || bands.length === 0) bands.push([round(from - start), round(end - start), state]);
  return bands;
}

function notes(count: WhatIfReport['outcomes'], runs: { inForce: RunReport; candidate: RunReport }, from: string): string[] {
  const said: string[] = ['both replays start closed with an empty window at the first outcome, whatever the live breaker was in then'];
  if (count.refusedByBreaker > 0) said.push(`${count.refusedByBreaker.toLocaleString('en')} attempts were refused by the live breaker: their outcome is unknown`);
  for (const [name, run] of Object.entries(runs)) {
    if (run.admittedUnknown === 0) continue;
    const at = new Date(Date.parse(from) + run.firstUnknownMs!).toISOString();
    said.push(`${name === 'inForce' ? 'in force' : 'the candidate'} would have let through ${run.admittedUnknown.toLocaleString('en')} of them (admitted, outcome unknown: counted neither way); from ${at} on, its figures are estimates`);
  }
  return said;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
