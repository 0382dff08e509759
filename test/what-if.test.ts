/**
 * The what-if replay against the live breaker: each scenario is played live through a real meshlet
 * twice (settings in force, then the candidate), and the first run's recorded history is replayed
 * (POST /breakers/chaos/what-if) with both settings. The replay must give the transitions, at the
 * same times, and the counts, that each live breaker produced on the same sequence.
 */
import test, { type ExecutionContext } from 'ava';
import { request } from 'undici';
import type { WhatIfReport, RunReport } from '../src/resilience/what-if.ts';
import { OK, playLive, steps, type BreakerConfig, type LiveRun } from './helpers/breaker-scenario.ts';

async function replay(run: LiveRun, candidate: BreakerConfig): Promise<WhatIfReport> {
  const res = await request(`${run.fixture.admin}/breakers/chaos/what-if`, { method: 'POST', body: JSON.stringify({ circuitBreaker: candidate }) });
  const body = await res.body.json();
  if (res.statusCode !== 200) throw new Error(`what-if answered ${res.statusCode}: ${JSON.stringify(body)}`);
  return body as WhatIfReport;
}

/** The replay of `live`'s own settings against its own history: everything the live breaker did. */
function sameAsLive(t: ExecutionContext, replayed: RunReport, live: LiveRun, label: string): void {
  t.deepEqual(replayed.transitions.map((x) => [x.ms, x.to]), live.transitions, `${label}: transitions and their times`);
  t.like(replayed, { rejected: live.rejected, failuresLetThrough: live.failuresLetThrough, probes: live.probes }, `${label}: counts`);
}

/**
 * A candidate replayed against the in-force run's history, compared with the candidate played live.
 * Exact when the candidate let through nothing the live breaker refused (no unknown outcomes).
 */
function candidateAsLive(t: ExecutionContext, replayed: RunReport, live: LiveRun, recorded: LiveRun): void {
  t.is(replayed.admittedUnknown, 0, 'the scenario leaves the candidate no unknown outcome');
  sameAsLive(t, replayed, live, 'candidate');
  // Of the requests the candidate refused, those the recorded run let through have a known outcome.
  const refused = live.steps.flatMap((step, i) => (live.refused[i] ? [{ step, known: !recorded.refused[i] }] : []));
  t.is(replayed.falseTrips, refused.filter((r) => r.known && r.step === OK).length, 'candidate: refused requests that would have succeeded');
  t.is(replayed.rejectedUnknown, refused.filter((r) => !r.known).length, 'candidate: refused requests whose outcome nobody knows');
}

async function scenario(t: ExecutionContext, inForce: BreakerConfig, candidate: BreakerConfig, sequence: ReturnType<typeof steps>) {
  const liveInForce = await playLive(t, inForce, sequence);
  const liveCandidate = await playLive(t, candidate, sequence);
  const report = await replay(liveInForce, candidate);
  t.is(report.outcomes.total, sequence.length, 'one outcome per request, refused ones included');
  sameAsLive(t, report.inForce, liveInForce, 'in force');
  t.like(report.inForce, { rejectedUnknown: liveInForce.rejected, falseTrips: 0, admittedUnknown: 0 });
  candidateAsLive(t, report.candidate, liveCandidate, liveInForce);
  return { report, liveInForce, liveCandidate };
}

test.serial('a clean outage and recovery: when each setting opens and closes, what it refused and let through', async (t) => {
  const inForce = { errorThresholdPercentage: 50, volumeThreshold: 10, window: '10s', resetTimeout: '400ms' };
  const candidate = { ...inForce, resetTimeout: '800ms' };
  // 20 successes, a 50-request outage, then the upstream is back.
  const { report, liveInForce, liveCandidate } = await scenario(t, inForce, candidate, steps(160, (i) => i >= 20 && i < 70));
  t.deepEqual(liveInForce.transitions.map(([, to]) => to), ['open', 'half_open', 'closed']);
  // The longer resetTimeout kept refusing for 500 ms after the recovery (400 ms of it after the
  // in-force breaker had closed again: those are the false trips the replay can see).
  t.is(liveCandidate.falseTrips, 50);
  t.is(report.candidate.falseTrips, 40);
  const [period] = report.inForce.periods;
  // Opened at the 21st failure (21 of 41 > 50%), 200 ms after the outage began with the first.
  t.like(period, { openedMs: 40 * 10, onsetToOpenMs: 20 * 10, closedMs: 80 * 10 });
  // Live, the requests after the recovery were refused: their outcome is unknown, and the probe is the
  // first success known. The candidate closes later, after 40 known successes.
  t.is(period!.recoveryToCloseMs, 0);
  t.like(report.candidate.periods[0], { openedMs: 40 * 10, closedMs: 120 * 10, recoveryToCloseMs: 400 });
});

test.serial('a 30% error flutter opens a 25% breaker again and again, and a 50% one never', async (t) => {
  const inForce = { errorThresholdPercentage: 50, volumeThreshold: 10, window: '1s', resetTimeout: '250ms' };
  const candidate = { ...inForce, errorThresholdPercentage: 25 };
  const { report } = await scenario(t, inForce, candidate, steps(300, (i) => [2, 5, 8].includes(i % 10)));
  t.deepEqual(report.inForce.transitions, []);
  t.true(report.candidate.periods.length >= 2, 'the candidate flaps');
});

test.serial('a burst of failures below volumeThreshold does not open the breaker; a lower threshold does', async (t) => {
  const inForce = { errorThresholdPercentage: 50, volumeThreshold: 20, window: '10s', resetTimeout: '300ms' };
  const candidate = { ...inForce, volumeThreshold: 5 };
  const { report } = await scenario(t, inForce, candidate, steps(80, (i) => i >= 3 && i < 11));
  t.deepEqual(report.inForce.transitions, []);
  t.is(report.candidate.periods.length, 1);
});

test.serial("failures a window apart: the replay's buckets turn when the live breaker's did", async (t) => {
  // Live, the first 5 failures leave the 1 s window at its 10th turn, 945 ms after the first of them;
  // a replay that turned its buckets elsewhere would still count them with the next 6 and open.
  const inForce = { errorThresholdPercentage: 8, volumeThreshold: 20, window: '1s', resetTimeout: '300ms' };
  const candidate = { ...inForce, window: '2s' };
  const { report } = await scenario(t, inForce, candidate, steps(140, (i) => i < 5 || (i >= 95 && i < 101)));
  t.deepEqual(report.inForce.transitions, []);
  t.like(report.candidate.periods[0], { openedMs: 97 * 10 }); // 8 of 98 > 8%
});

test.serial('a candidate that half-opens while the live breaker was open: its probe has no known outcome, holds its place, and the next known outcome decides', async (t) => {
  const inForce = { errorThresholdPercentage: 50, volumeThreshold: 10, window: '10s', resetTimeout: '400ms' };
  const live = await playLive(t, inForce, steps(100, (i) => i >= 20 && i < 70));
  const report = await replay(live, { ...inForce, resetTimeout: '200ms' });
  // Live: open at step 40, the probe at step 80 closes it. The candidate half-opens at step 60: that
  // request was refused live, so the candidate's probe has no outcome; steps 61-79 are refused (a
  // probe is in flight); step 80, known, goes as the probe and closes it.
  t.deepEqual(report.candidate.transitions.map((x) => [x.ms, x.to]), [[400, 'open'], [600, 'half_open'], [800, 'closed']]);
  t.like(report.candidate, { admittedUnknown: 1, probes: 1, rejected: 19 + 19, rejectedUnknown: 38, falseTrips: 0 });
  t.true(report.notes.some((note) => note.startsWith('the candidate would have let through 1 of them')), report.notes.join('\n'));
});
