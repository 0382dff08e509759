/**
 * "What would these breaker settings have done?": a history of outcomes replayed through the real
 * breaker, once with the settings in force and once with a candidate (replay.ts), side by side
 * (what-if-report.ts). Used by `POST /breakers/NAME/what-if` and `meshlet breakers what-if`.
 *
 * The replay runs in a worker thread, whose timers it turns to virtual time: a sidecar serving
 * traffic keeps its own event loop on real time, and is never blocked by a replay.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { BreakerSettings } from './breaker.ts';
import type { HistorySnapshot } from './outcome-history.ts';
import type { WhatIfReport } from './what-if-report.ts';
import type { WhatIfJob } from './what-if-worker.ts';

export type { WhatIfReport, RunReport, Period } from './what-if-report.ts';

/** The worker's module beside this one: `.ts` when run from src/, `.js` from dist/. */
const WORKER = new URL(`./what-if-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
/** A replay of 1,000,000 outcomes takes ~100 MB; the sidecar's own heap is not shared with it. */
const WORKER_HEAP_MB = 512;

/** Replay `history` with the settings in force and with `candidate` (null: no breaker). */
export function whatIf(history: HistorySnapshot, inForce: BreakerSettings | null, candidate: BreakerSettings | null): Promise<WhatIfReport> {
  const job: WhatIfJob = { history, inForce, candidate };
  const worker = new Worker(WORKER, {
    workerData: job,
    transferList: [history.ends.buffer, history.kinds.buffer, history.labels.buffer, history.latencies.buffer] as ArrayBuffer[],
    resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
    stdout: false,
    stderr: false,
  });
  return new Promise((resolve, reject) => {
    let answered = false;
    worker.once('message', (report: WhatIfReport) => {
      answered = true;
      resolve(report);
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (!answered) reject(new Error(`the what-if replay stopped (exit code ${code}) without an answer`));
    });
  });
}
