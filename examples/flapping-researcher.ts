/**
 * The access log of the worked incident in docs/tuning-breakers.md: 15 minutes of the
 * planner calling `researcher` (POST, ~40 a second, answers in 0.2-1.5 s) while the researcher's
 * model provider flaps: from minute 4 to minute 11, a 20-second burst of 503s (80%) every minute.
 * The planner's breaker has config/meshlet.yaml's settings (the defaults: 50% of ≥ 20 in 10 s, 30 s
 * open); which requests it refused is decided by the real breaker, replayed as `meshlet breakers
 * what-if` does, so the log reads as the sidecar would have written it.
 *
 *   node examples/flapping-researcher.ts > researcher.log
 *   npx meshlet breakers what-if --log researcher.log --upstream researcher --set circuitBreaker.resetTimeout=90s
 */
import type { BreakerSettings } from '../src/resilience/breaker.ts';
import { FAILED, SUCCEEDED, type HistorySnapshot } from '../src/resilience/outcome-history.ts';
import { REJECTED, admissionOrder, admissionTimes, replay } from '../src/resilience/replay.ts';
import { VirtualTime } from '../src/resilience/virtual-time.ts';
import { Prng } from '../test/helpers/fuzz/prng.ts';

/** A deterministic sequence in [0, 1) (the fuzzing gate's mulberry32): the same every time. */
function fractions(seed: number): () => number {
  const prng = new Prng(seed);
  return () => prng.fraction();
}

const START = Date.parse('2026-05-12T14:00:00.000Z');
const MINUTES = 15;
const PER_SECOND = 40;
const IN_FORCE: BreakerSettings = { errorThresholdPercentage: 50, volumeThreshold: 20, window: 10_000, resetTimeout: 30_000, failureOn: ['connect-failure', 'reset', 'timeout', '5xx'] };

/** The share of calls that fail, `s` seconds in. */
function failing(s: number): number {
  const flapping = s >= 4 * 60 && s < 11 * 60;
  return flapping && s % 60 < 20 ? 0.8 : 0.02;
}

const next = fractions(12);
const n = MINUTES * 60 * PER_SECOND;
// Calls start evenly; each ends after its own latency (failures come back faster).
const calls = Array.from({ length: n }, (_, i) => {
  const start = (i * 1_000) / PER_SECOND;
  const failed = next() < failing(start / 1_000);
  const latency = failed ? 50 + next() * 200 : 200 + next() * 1_300;
  return { start, end: start + latency, failed };
}).sort((a, b) => a.end - b.end);

// What the breaker in force would have refused: the same replay as the what-if's.
const history: HistorySnapshot = {
  upstream: 'researcher',
  wallOffset: START,
  windowOrigin: -1_000,
  ends: Float64Array.from(calls, (c) => c.end),
  kinds: Uint8Array.from(calls, (c) => (c.failed ? FAILED : SUCCEEDED)),
  labels: Uint8Array.from(calls, (c) => (c.failed ? 1 : 0)),
  latencies: Float32Array.from(calls, (c) => c.end - c.start),
  labelTable: ['success', '503'],
};
const time = new VirtualTime();
time.takeOverGlobals(); // this script does nothing else
const admitted = admissionTimes(history);
const { fates } = await replay(history, IN_FORCE, time, admitted, admissionOrder(admitted));

const lines = calls.map((call, i) => {
  const refused = fates[i] === REJECTED;
  const end = refused ? call.start + 0.3 : call.end;
  const fields = {
    level: 30,
    time: new Date(Math.round(START + end)).toISOString(),
    service: 'planner',
    type: 'access',
    direction: 'outbound',
    upstream: 'researcher',
    method: 'POST',
    path: '/v1/research',
    status: refused || call.failed ? 503 : 200,
    durationMs: Math.round((end - call.start) * 100) / 100,
    ...(refused ? { error: 'circuit_open', outcome: 'rejected' } : { endpoint: 'http://127.0.0.1:16006', attempts: 1, outcome: call.failed ? '503' : 'success' }),
    msg: 'request',
  };
  return { end, text: JSON.stringify(fields) };
});
lines.sort((a, b) => a.end - b.end);
process.stdout.write(`${lines.map((l) => l.text).join('\n')}\n`);
