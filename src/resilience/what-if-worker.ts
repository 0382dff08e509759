/**
 * The what-if replay's thread: its global timers and `Date.now` run on virtual time (opossum's
 * reset timer reads them), which would disturb any other work, so it does nothing else. It takes a
 * history and two sets of settings, replays both, and answers with the report.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { BreakerSettings } from './breaker.ts';
import type { HistorySnapshot } from './outcome-history.ts';
import { admissionOrder, admissionTimes, replay } from './replay.ts';
import { VirtualTime } from './virtual-time.ts';
import { buildReport } from './what-if-report.ts';

export type WhatIfJob = { history: HistorySnapshot; inForce: BreakerSettings | null; candidate: BreakerSettings | null };

// A refusal is a MeshletError; nobody reads the stack traces of a replay's refusals.
Error.stackTraceLimit = 0;
const time = new VirtualTime();
time.takeOverGlobals();
const { history, inForce, candidate } = workerData as WhatIfJob;
const admitted = admissionTimes(history);
const order = admissionOrder(admitted);
const inForceResult = await replay(history, inForce, time, admitted, order);
const candidateResult = await replay(history, candidate, time, admitted, order);
parentPort!.postMessage(buildReport(history, admitted, [inForce, inForceResult], [candidate, candidateResult]));
