/**
 * How long `meshlet breakers what-if` takes on 15 minutes of history at 1,000 requests per second
 * (900,000 outcomes), both replays (settings in force and a candidate) and the report. Target: < 2 s.
 *
 *   node bench/what-if.ts            (from src/, type stripping)
 *   node bench/what-if.ts --dist     (the compiled dist/, as `meshlet` runs it; `npm run build` first)
 *
 * The history: a 1,000 req/s upstream with ~1% failures, a flapping phase (30-60% failures in
 * bursts), a full outage of two minutes and a recovery, with latencies of 5-200 ms.
 */
import type { BreakerSettings } from '../src/resilience/breaker.ts';
import type { HistorySnapshot } from '../src/resilience/outcome-history.ts';
import { Prng } from '../test/helpers/fuzz/prng.ts';

const useDist = process.argv.includes('--dist');
const { whatIf } = (await import(useDist ? '../dist/resilience/what-if.js' : '../src/resilience/what-if.ts')) as typeof import('../src/resilience/what-if.ts');

/** A deterministic sequence in [0, 1) (the fuzzing gate's mulberry32): the same every time. */
function fractions(seed: number): () => number {
  const prng = new Prng(seed);
  return () => prng.fraction();
}

const RATE = 1_000;
const SECONDS = 15 * 60;

/** Failure probability at second `s`. */
function failureShare(s: number): number {
  if (s >= 300 && s < 420) return s % 20 < 8 ? 0.6 : 0.2; // flapping
  if (s >= 600 && s < 720) return 1; // outage
  return 0.01;
}

export function syntheticHistory(): HistorySnapshot {
  const n = RATE * SECONDS;
  const next = fractions(42);
  const ends = new Float64Array(n);
  const kinds = new Uint8Array(n);
  const labels = new Uint8Array(n);
  const latencies = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const end = 1_000 + (i / RATE) * 1_000;
    ends[i] = end;
    const failed = next() < failureShare(end / 1_000);
    kinds[i] = failed ? 1 : 0;
    labels[i] = failed ? 1 : 0;
    latencies[i] = 5 + next() * 195;
  }
  return { upstream: 'bench', wallOffset: Date.now() - ends[n - 1]!, windowOrigin: 0, ends, kinds, labels, latencies, labelTable: ['success', '503'] };
}

const inForce: BreakerSettings = { errorThresholdPercentage: 50, volumeThreshold: 20, window: 10_000, resetTimeout: 30_000, failureOn: ['connect-failure', 'reset', 'timeout', '5xx'] };
const candidate: BreakerSettings = { ...inForce, errorThresholdPercentage: 30, window: 5_000, resetTimeout: 10_000 };

const history = syntheticHistory();
const started = performance.now();
const report = await whatIf(history, inForce, candidate);
const ms = performance.now() - started;
const summary = (run: typeof report.inForce) => `${run.periods.length} openings, ${run.rejected} rejected, ${run.falseTrips} false trips, ${run.failuresLetThrough} failures let through`;
process.stdout.write(`what-if over ${report.outcomes.total.toLocaleString('en')} outcomes (${SECONDS / 60} min at ${RATE} req/s, ${useDist ? 'dist' : 'src'}): ${Math.round(ms)} ms\n`);
process.stdout.write(`  in force:  ${summary(report.inForce)}\n  candidate: ${summary(report.candidate)}\n`);
