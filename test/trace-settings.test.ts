/**
 * Reading the standard OTEL_* variables (from the environment passed in) and W3C traceparent values:
 * what a user sets is what meshlet does, and what it cannot use is said, not silently ignored.
 */
import test from 'ava';
import { otelSettings, sdkDisabled } from '../src/telemetry/tracing/otel-env.ts';
import { formatTraceparent, parseTraceparent } from '../src/telemetry/tracing/trace-context.ts';

test('defaults: parent-based always-on, the local collector, the SDK batch sizes, the config service name', (t) => {
  const settings = otelSettings({}, 'planner');
  t.like(settings, {
    serviceName: 'planner',
    sampler: { kind: 'parentbased_always_on', ratio: 1 },
    exporting: true,
    exporter: { url: 'http://localhost:4318/v1/traces', headers: {}, timeoutMs: 10_000, compression: 'none' },
    batch: { maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMs: 5000, exportTimeoutMs: 30_000 },
  });
  t.deepEqual(settings.problems, []);
  t.false(sdkDisabled({}));
  t.true(sdkDisabled({ OTEL_SDK_DISABLED: 'TRUE' }));
});

test('the variables a user sets are honoured, the signal-specific ones first', (t) => {
  const settings = otelSettings(
    {
      OTEL_SERVICE_NAME: 'named',
      OTEL_RESOURCE_ATTRIBUTES: 'service.name=ignored,deployment.environment=prod%20eu',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.1',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20a,x-tenant=t1',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-tenant=t2',
      OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
      OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'gzip',
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
    },
    'planner',
  );
  t.like(settings, {
    serviceName: 'named',
    resourceAttributes: { 'deployment.environment': 'prod eu' },
    sampler: { kind: 'parentbased_traceidratio', ratio: 0.1 },
    exporter: { url: 'http://collector:4318/v1/traces', headers: { authorization: 'Bearer a', 'x-tenant': 't2' }, timeoutMs: 2000, compression: 'gzip' },
    batch: { maxQueueSize: 100, maxExportBatchSize: 100 },
  });
  t.false('service.name' in settings.resourceAttributes);
  t.is(otelSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' }, 'p').exporter.url, 'http://c:4318/custom');
  t.is(otelSettings({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attributes' }, 'p').serviceName, 'from-attributes');
  t.false(otelSettings({ OTEL_TRACES_EXPORTER: 'none' }, 'p').exporting);
});

test('values meshlet cannot use are named, and the defaults kept', (t) => {
  const settings = otelSettings(
    { OTEL_TRACES_SAMPLER: 'jaeger_remote', OTEL_BSP_SCHEDULE_DELAY: 'soon', OTEL_TRACES_EXPORTER: 'zipkin', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
    'p',
  );
  t.is(settings.sampler.kind, 'parentbased_always_on');
  t.is(settings.batch.scheduledDelayMs, 5000);
  t.is(settings.problems.length, 4);
  t.regex(settings.problems.join('\n'), /OTEL_TRACES_SAMPLER: "jaeger_remote"/);
  t.regex(settings.problems.join('\n'), /OTEL_EXPORTER_OTLP_PROTOCOL: .*grpc/);
  t.like(otelSettings({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'p'), { sampler: { kind: 'traceidratio', ratio: 1 } });
});

test('traceparent: valid values are read, invalid ones refused, as W3C Trace Context says', (t) => {
  const id = '4bf92f3577b34da6a3ce929d0e0e4736';
  const span = '00f067aa0ba902b7';
  t.deepEqual(parseTraceparent(`00-${id}-${span}-01`), { traceId: id, spanId: span, traceFlags: 1 });
  t.deepEqual(parseTraceparent(` 00-${id}-${span}-00 `), { traceId: id, spanId: span, traceFlags: 0 });
  // A later version is read by its version-00 prefix, with more fields after a dash.
  t.deepEqual(parseTraceparent(`01-${id}-${span}-01-future`), { traceId: id, spanId: span, traceFlags: 1 });
  for (const bad of [
    `00-${id}-${span}-01-extra`, // version 00 has exactly four fields
    `ff-${id}-${span}-01`,
    `00-${id.toUpperCase()}-${span}-01`,
    `00-${'0'.repeat(32)}-${span}-01`,
    `00-${id}-${'0'.repeat(16)}-01`,
    `00-${id}-${span}`,
    `00_${id}-${span}-01`,
    '',
  ]) {
    t.is(parseTraceparent(bad), null, bad);
  }
  t.is(formatTraceparent(id, span, 1), `00-${id}-${span}-01`);
  t.is(formatTraceparent(id, span, 0), `00-${id}-${span}-00`);
});
