/**
 * The one module that loads OpenTelemetry's SDK. tracing.ts imports it dynamically, at start and only
 * when tracing is on: importing the SDK takes ~0.1 s and ~25 MB that a sidecar with tracing off never
 * pays.
 *
 * Built from the SDK's parts rather than `@opentelemetry/sdk-node`'s NodeSDK: NodeSDK registers a
 * process-wide tracer provider, context manager and propagator (one service per process, where a test
 * or an embedder runs several sidecars, each its own service), instruments http and undici
 * (meshlet makes its own spans and must not get a second set), reads only `process.env`, and loads
 * the gRPC and protobuf exporters. Here each sidecar owns one TracerProvider, passes parents
 * explicitly (no context manager: nothing on the request path depends on async context), and exports
 * OTLP/HTTP with `@opentelemetry/exporter-trace-otlp-http`.
 *
 * Exporting never touches the request path: spans wait in the batch processor's bounded queue
 * (`OTEL_BSP_MAX_QUEUE_SIZE`), one batch is sent at a time, and a span that finds the queue full is
 * dropped and counted. A collector that is down, slow or failing costs spans, never latency.
 */
import { ROOT_CONTEXT, SpanKind, createNoopMeter, trace, type Attributes, type Counter, type Meter, type MeterProvider, type Span } from '@opentelemetry/api';
import { TraceState, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import type { OtelSettings } from './otel-env.ts';
import type { RemoteParent } from './trace-context.ts';
import type { ExportEvents, SpanSource } from './tracing.ts';

type ExporterConfig = NonNullable<ConstructorParameters<typeof OTLPTraceExporter>[0]>;

const SERVER = { kind: SpanKind.SERVER };
const CLIENT = { kind: SpanKind.CLIENT };

/** The SDK, set up from `settings`; `events` hears of every span exported or lost. */
export function createSpanSource(settings: OtelSettings, version: string, events: ExportEvents): SpanSource {
  const spanProcessors: SpanProcessor[] = [];
  if (settings.exporting) {
    const { url, headers, timeoutMs, compression } = settings.exporter;
    const { maxQueueSize, maxExportBatchSize, scheduledDelayMs, exportTimeoutMs } = settings.batch;
    // Two exports at most in flight: a hung collector holds two batches, not thirty (the default).
    const exporter = new OTLPTraceExporter({ url, headers, timeoutMillis: timeoutMs, compression: compression as ExporterConfig['compression'], concurrencyLimit: 2 });
    spanProcessors.push(
      new BatchSpanProcessor({
        exporter: new ReportingExporter(exporter, events),
        maxQueueSize,
        maxExportBatchSize,
        scheduledDelayMillis: scheduledDelayMs,
        exportTimeoutMillis: exportTimeoutMs,
        selfObsMeterProvider: exportCounter(events),
      }),
    );
  }
  const resource = defaultResource().merge(
    resourceFromAttributes({ ...settings.resourceAttributes, 'service.name': settings.serviceName, 'service.version': version }),
  );
  const provider = new TracerProvider({ resource, sampler: samplerFor(settings.sampler), spanProcessors });
  return new OtelSpans(provider, version);
}

class OtelSpans implements SpanSource {
  private readonly provider: TracerProvider;
  private readonly tracer;

  constructor(provider: TracerProvider, version: string) {
    this.provider = provider;
    this.tracer = provider.getTracer('meshlet', version);
  }

  server(name: string, parent: RemoteParent | null, traceState: string | undefined): Span {
    if (parent === null) return this.tracer.startSpan(name, SERVER, ROOT_CONTEXT);
    const context = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: parent.traceId,
      spanId: parent.spanId,
      traceFlags: parent.traceFlags,
      isRemote: true,
      traceState: traceState === undefined ? undefined : new TraceState(traceState),
    });
    return this.tracer.startSpan(name, SERVER, context);
  }

  client(name: string, parent: Span): Span {
    return this.tracer.startSpan(name, CLIENT, trace.setSpan(ROOT_CONTEXT, parent));
  }

  /** Send what is queued, giving up after `timeoutMs` (a collector that hangs must not hold the exit). */
  async shutdown(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const givenUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([this.provider.shutdown().catch(() => undefined), givenUp]);
    clearTimeout(timer);
  }
}

function samplerFor({ kind, ratio }: OtelSettings['sampler']): Sampler {
  switch (kind) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/** The batch processor reports each span it finished with (sent, failed, or dropped for a full queue). */
const PROCESSED = 'otel.sdk.processor.span.processed';
const ERROR_TYPE = 'error.type';
const QUEUE_FULL = 'queue_full';

/**
 * The batch processor keeps its drop count private, but reports every span it is done with to its
 * self-observability meter (`otel.sdk.processor.span.processed`, with `error.type` `queue_full` for a
 * drop, the error's name for a failed export). This meter hands those to `events` and ignores the rest.
 */
function exportCounter(events: ExportEvents): MeterProvider {
  const noop = createNoopMeter();
  const processed: Counter = {
    add(count: number, attributes?: Attributes): void {
      const error = attributes?.[ERROR_TYPE];
      if (error === undefined) events.exported(count);
      else events.dropped(count, error === QUEUE_FULL ? 'queue_full' : 'export_failed');
    },
  };
  const meter: Meter = Object.create(noop, {
    createCounter: { value: (name: string) => (name === PROCESSED ? processed : noop.createCounter(name)) },
  }) as Meter;
  return { getMeter: () => meter };
}

/** Tells `events` how each export went, with the error when it failed (for the log). */
class ReportingExporter implements SpanExporter {
  private readonly inner: SpanExporter;
  private readonly events: ExportEvents;

  constructor(inner: SpanExporter, events: ExportEvents) {
    this.inner = inner;
    this.events = events;
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      this.events.exportDone(result.error ?? null);
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}
