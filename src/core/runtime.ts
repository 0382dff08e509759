/**
 * What every part of the sidecar is given instead of reaching for globals: config, metrics, logger,
 * clock, access log, drain. Made once per sidecar (sidecar.ts); tests make their own, with a fake clock.
 */
import type { Logger } from 'pino';
import type { MeshletConfig } from '../config/schema.ts';
import type { Drain } from '../health/drain.ts';
import type { AccessLog } from '../telemetry/access-log.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { Tracing } from '../telemetry/tracing/tracing.ts';
import type { Clock } from './clock.ts';
import type { Layer } from './stage.ts';
import type { Upstream } from '../upstream/upstream.ts';

export type Runtime = {
  /** The config in force: replaced by a reload; read it when building, not on the request path. */
  config: MeshletConfig;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly accessLog: AccessLog | null;
  readonly drain: Drain;
  /** The process's soft limit on open files, read once at start: connection limits derive from it. */
  readonly descriptors: number;
  /** null when tracing is off: its stage and layer then compose to nothing. */
  readonly tracing: Tracing | null;
  /** Layers added innermost to every upstream's stack, just before sending (tests, embedders). */
  readonly extraLayers?: ((upstream: Upstream) => Layer[]) | undefined;
};
