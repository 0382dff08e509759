/**
 * Node process metrics: prom-client's default collectors, except its event-loop lag, which reported the
 * sampling interval as lag and missed stalls between samples; `EventLoopLag` replaces it under the same
 * names. collectDefaultMetrics cannot leave one collector out, so they are registered one by one, as it
 * would (prom-client 15's lib/defaultMetrics.js, less eventLoopLag).
 *
 * Three of them pair each per-type gauge with a `_total` gauge of its sum
 * (`nodejs_active_handles_total`, `..._requests_total`, `..._resources_total`); `promtool check
 * metrics` rejects a gauge named like a counter, and rate() over it would be nonsense, so they are
 * dropped: `sum(meshlet_nodejs_active_handles)` is the same number.
 */
import type { Registry } from 'prom-client';
import gc from 'prom-client/lib/metrics/gc.js';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import processCpuTotal from 'prom-client/lib/metrics/processCpuTotal.js';
import processHandles from 'prom-client/lib/metrics/processHandles.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processRequests from 'prom-client/lib/metrics/processRequests.js';
import processResources from 'prom-client/lib/metrics/processResources.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import version from 'prom-client/lib/metrics/version.js';
import { EventLoopLag } from './event-loop.ts';

const PREFIX = 'meshlet_';

/** Gauges named like counters (see above). */
const MISNAMED_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

const PROM_CLIENT_COLLECTORS = [
  processCpuTotal,
  processStartTime,
  osMemoryHeap,
  processOpenFileDescriptors,
  processMaxFileDescriptors,
  processResources,
  processHandles,
  processRequests,
  heapSizeAndUsed,
  heapSpacesSizeAndUsed,
  version,
  gc,
];

/** Register the process metrics on `registry`, prefixed `meshlet_`; close the result to stop measuring. */
export function registerProcessMetrics(registry: Registry): EventLoopLag {
  for (const register of PROM_CLIENT_COLLECTORS) register(registry, { prefix: PREFIX });
  for (const name of MISNAMED_GAUGES) registry.removeSingleMetric(PREFIX + name);
  return new EventLoopLag(registry, PREFIX);
}
