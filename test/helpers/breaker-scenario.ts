/**
 * A breaker scenario played live: a real meshlet, on a fake clock, in front of a chaos upstream,
 * one request per step (`STEP_MS` apart on the fake clock), each answered as the step says. It
 * records what the live breaker did (its transitions, at fake times, from its log lines; what it
 * refused) and what the steps say would have happened, for the what-if replay to be compared with.
 *
 * opossum's reset timer is real: when a half-open is due, the fake clock is moved exactly there and
 * the test waits for the real half-open log line, so that the live half-open falls at open +
 * resetTimeout on the fake clock, as in a replay. Should the real timer fire first (the requests
 * sent while open took longer than resetTimeout on a loaded machine), the run is void and played
 * again on a fresh sidecar, up to three times, rather than skewed.
 */
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { startChaos, type ChaosBehaviour } from './chaos.ts';
import { FakeClock } from './fake-clock.ts';
import { startSidecar, type Fixture } from './with-sidecar.ts';

export const STEP_MS = 10;
/**
 * The first step comes this long after the breaker was made: half-way between two turns of a 1 s
 * window's buckets, so that a replay which put its buckets elsewhere would count differently.
 */
const LEAD_MS = 55;
export const OK: ChaosBehaviour = { kind: 'ok' };
export const FAIL: ChaosBehaviour = { kind: 'status', status: 503 };

export type BreakerConfig = { errorThresholdPercentage: number; volumeThreshold: number; window: string; resetTimeout: string };

export type LiveRun = {
  fixture: Fixture;
  clock: FakeClock;
  /** Fake time of the first step. */
  start: number;
  /** [ms from start, state entered]. */
  transitions: [number, string][];
  rejected: number;
  /** Refused steps that would have succeeded. */
  falseTrips: number;
  /** Failing steps sent while the breaker was closed. */
  failuresLetThrough: number;
  probes: number;
  /** The steps played, and which of them the breaker refused. */
  steps: readonly ChaosBehaviour[];
  refused: boolean[];
};

const STATES: Record<string, string> = { 'circuit breaker opened': 'open', 'circuit breaker half-open': 'half_open', 'circuit breaker closed': 'closed' };

export async function playLive(t: ExecutionContext, breaker: BreakerConfig, steps: readonly ChaosBehaviour[]): Promise<LiveRun> {
  for (let tries = 1; ; tries++) {
    const run = await playOnce(t, breaker, steps);
    if (run !== null) return run;
    if (tries === 3) throw new Error('the real reset timer fired before the fake clock reached it, three times: the machine is too slow for this test');
    t.log('the real reset timer fired early: played again');
  }
}

/** One live run; null when opossum's real reset timer fired before the fake clock was there. */
async function playOnce(t: ExecutionContext, breaker: BreakerConfig, steps: readonly ChaosBehaviour[]): Promise<LiveRun | null> {
  const chaos = await startChaos(t);
  const clock = new FakeClock();
  const fixture = await startSidecar(t, {
    sidecar: { clock },
    config: () => ({ upstreams: { chaos: { endpoints: [chaos.url], retries: { maxRetries: 0 }, circuitBreaker: breaker } } }),
  });
  const live = fixture.sidecar.upstreams.get('chaos')!.breaker!;
  const resetTimeout = live.settings.resetTimeout;
  const run: LiveRun = { fixture, clock, start: clock.now() + LEAD_MS, transitions: [], rejected: 0, falseTrips: 0, failuresLetThrough: 0, probes: 0, steps, refused: [] };
  let seen = fixture.logs.lines.length;
  let openedAt = 0;
  let early = false;
  const collect = (at: number) => {
    for (const line of fixture.logs.lines.slice(seen)) {
      const to = STATES[line.msg ?? ''];
      if (to === undefined) continue;
      if (to === 'half_open' && at !== openedAt + resetTimeout) early = true;
      if (to === 'open') openedAt = at;
      run.transitions.push([at - run.start, to]);
    }
    seen = fixture.logs.lines.length;
  };
  for (const [i, step] of steps.entries()) {
    const due = i === 0 ? run.start : clock.now() + STEP_MS;
    if (live.state === 'open' && openedAt + resetTimeout <= due) {
      clock.advance(openedAt + resetTimeout - clock.now());
      const mark = seen;
      await fixture.logs.next((line) => line.msg === 'circuit breaker half-open' && fixture.logs.lines.indexOf(line) >= mark);
      collect(clock.now());
    }
    clock.advance(due - clock.now());
    collect(due);
    const state = live.state;
    chaos.queue.length = 0;
    chaos.queue.push(step);
    const res = await request(`${fixture.outbound}/`, { headers: { host: 'chaos' } });
    await res.body.text();
    run.refused.push(res.headers['x-meshlet-error'] === 'circuit_open');
    if (run.refused.at(-1)) {
      run.rejected++;
      if (step === OK) run.falseTrips++;
    } else if (state === 'half_open') run.probes++;
    else if (step === FAIL) run.failuresLetThrough++;
    collect(due);
    if (early) return null;
  }
  return run;
}

/** `count` steps, failing where `fails(i)` says. */
export function steps(count: number, fails: (i: number) => boolean): ChaosBehaviour[] {
  return Array.from({ length: count }, (_, i) => (fails(i) ? FAIL : OK));
}
