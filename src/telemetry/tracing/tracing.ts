/**
 * Tracing for one sidecar: whether it is on, the SDK behind it (loaded at start, only when on), and
 * the metrics of its export. Off (`telemetry.tracing.enabled: false`, the default, or
 * OTEL_SDK_DISABLED=true) there is no `Tracing` at all: the server-span stage and the client-span
 * layer compose to nothing and no OpenTelemetry module is ever imported.
 */
import { readFile } from 'node:fs/promises';
import type { Span } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import type { Env } from '../../config/env.ts';
import type { MeshletConfig } from '../../config/schema.ts';
import type { Exchange } from '../../core/exchange.ts';
import type { Metrics } from '../metrics.ts';
import { otelSettings, sdkDisabled, type OtelSettings } from './otel-env.ts';
import type { RemoteParent } from './trace-context.ts';

/** What the request path asks of the SDK (otel-sdk.ts). */
export interface SpanSource {
  /** A SERVER span, child of the client's span when its `traceparent` was valid, else a new trace's root. */
  server(name: string, parent: RemoteParent | null, traceState: string | undefined): Span;
  /** A CLIENT span, child of `parent`. */
  client(name: string, parent: Span): Span;
  /** Export what is queued, within `timeoutMs`, and stop. */
  shutdown(timeoutMs: number): Promise<void>;
}

/** Why spans were lost: the queue was full (the collector is behind or away), or a batch failed to send. */
export type DropReason = 'queue_full' | 'export_failed';

/** What the SDK reports about exporting, off the request path. */
export type ExportEvents = {
  exported(count: number): void;
  dropped(count: number, reason: DropReason): void;
  /** One export finished: null when it succeeded. */
  exportDone(error: Error | null): void;
};

/** How long stopping waits for the last spans to reach the collector. */
const SHUTDOWN_FLUSH_MS = 2_000;

export type TracingOptions = { config: MeshletConfig; env: Env; metrics: Metrics; logger: Logger };

export class Tracing {
  /** The SDK once `start()` loaded it; null before (requests then go untraced) or when it failed to load. */
  spans: SpanSource | null = null;
  readonly settings: OtelSettings;
  private readonly options: TracingOptions;
  private readonly exportedSpans: Counter;
  private readonly droppedSpans: Counter<'reason'>;
  private exportFailing = false;

  /** The sidecar's tracing, or null when it is off: then nothing of it is composed or loaded. */
  static create(options: TracingOptions): Tracing | null {
    if (!options.config.telemetry.tracing.enabled) return null;
    if (sdkDisabled(options.env)) {
      options.logger.info('tracing is off: OTEL_SDK_DISABLED=true overrides telemetry.tracing.enabled');
      return null;
    }
    return new Tracing(options);
  }

  private constructor(options: TracingOptions) {
    this.options = options;
    this.settings = otelSettings(options.env, options.config.service.name);
    const registry = options.metrics.registry;
    this.exportedSpans = new Counter({
      name: 'meshlet_trace_spans_exported_total',
      help: 'Spans the collector accepted.',
      registers: [registry],
    });
    this.droppedSpans = new Counter({
      name: 'meshlet_trace_spans_dropped_total',
      help: 'Spans lost: reason="queue_full" (the export queue, OTEL_BSP_MAX_QUEUE_SIZE, was full: the collector is slow or away) or "export_failed" (the collector refused or did not answer a batch).',
      labelNames: ['reason'] as const,
      registers: [registry],
    });
    for (const reason of ['queue_full', 'export_failed'] as const) this.droppedSpans.labels(reason).inc(0);
  }

  /** Load the SDK; until this resolves requests are not traced. A failure to load leaves tracing off, logged. */
  async start(): Promise<void> {
    const { logger, metrics } = this.options;
    for (const problem of this.settings.problems) logger.warn(`tracing: ${problem}`);
    try {
      const [{ createSpanSource }, version] = await Promise.all([import('./otel-sdk.ts'), meshletVersion()]);
      this.spans = createSpanSource(this.settings, version, this.events);
    } catch (error) {
      logger.error({ err: error }, 'tracing is off: the OpenTelemetry SDK could not be loaded');
      return;
    }
    metrics.traceIdOf = traceIdOf;
    const { serviceName, sampler, exporting, exporter } = this.settings;
    logger.info(
      { service: serviceName, sampler: sampler.kind, ratio: sampler.ratio, endpoint: exporting ? exporter.url : 'none' },
      'tracing on',
    );
  }

  /** Export the spans still queued (bounded in time), then stop. */
  async shutdown(): Promise<void> {
    const spans = this.spans;
    this.spans = null;
    await spans?.shutdown(SHUTDOWN_FLUSH_MS);
  }

  private readonly events: ExportEvents = {
    exported: (count) => this.exportedSpans.inc(count),
    dropped: (count, reason) => this.droppedSpans.labels(reason).inc(count),
    exportDone: (error) => {
      // One line when exports start failing and one when they recover, not one per batch.
      if (error !== null && !this.exportFailing) {
        this.options.logger.warn({ endpoint: this.settings.exporter.url, error: error.message }, 'tracing: spans cannot be exported; they are dropped and counted until the collector answers');
      } else if (error === null && this.exportFailing) {
        this.options.logger.info({ endpoint: this.settings.exporter.url }, 'tracing: spans are exported again');
      }
      this.exportFailing = error !== null;
    },
  };
}

/** `service.version` of the spans: the package's version (the same path from src/ and from dist/). */
async function meshletVersion(): Promise<string> {
  const text = await readFile(new URL('../../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/** The trace id for exemplars and the access log: only of sampled traces, the ones a backend will have. */
function traceIdOf(ex: Exchange): string {
  const trace = ex.trace;
  return trace === null ? '' : trace.traceId;
}
