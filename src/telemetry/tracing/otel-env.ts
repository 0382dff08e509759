/**
 * Tracing's settings from the standard `OTEL_*` environment variables (OpenTelemetry's "SDK
 * environment variables" specification), read from the environment passed in: tests never touch
 * `process.env`, and several sidecars in one process may each have their own. Pure: loads no
 * OpenTelemetry module, so that it can decide whether any will be loaded at all.
 *
 * A value that cannot be used is reported in `problems` (logged once at start) and its default kept:
 * a typo in a tracing variable must not stop a proxy.
 */
import type { Env } from '../../config/env.ts';

export type SamplerKind =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';

const SAMPLERS: ReadonlySet<string> = new Set<SamplerKind>([
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
]);

export type OtelSettings = {
  serviceName: string;
  /** From OTEL_RESOURCE_ATTRIBUTES (service.name among them is already folded into `serviceName`). */
  resourceAttributes: Record<string, string>;
  sampler: { kind: SamplerKind; ratio: number };
  /** false for OTEL_TRACES_EXPORTER=none: spans are made and propagated, never sent. */
  exporting: boolean;
  exporter: { url: string; headers: Record<string, string>; timeoutMs: number; compression: 'gzip' | 'none' };
  batch: { maxQueueSize: number; maxExportBatchSize: number; scheduledDelayMs: number; exportTimeoutMs: number };
  problems: string[];
};

/** Whether OTEL_SDK_DISABLED turns tracing off whatever the config says. */
export function sdkDisabled(env: Env): boolean {
  return env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true';
}

/** `serviceName` is the config's `service.name`, used unless the environment names the service. */
export function otelSettings(env: Env, serviceName: string): OtelSettings {
  const problems: string[] = [];
  const resourceAttributes = keyValues(env, 'OTEL_RESOURCE_ATTRIBUTES', problems);
  // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES, which wins over the config.
  const named = value(env, 'OTEL_SERVICE_NAME') ?? resourceAttributes['service.name'] ?? serviceName;
  delete resourceAttributes['service.name'];
  return {
    serviceName: named,
    resourceAttributes,
    sampler: samplerFrom(env, problems),
    exporting: exportingFrom(env, problems),
    exporter: {
      url: endpointFrom(env),
      headers: { ...keyValues(env, 'OTEL_EXPORTER_OTLP_HEADERS', problems), ...keyValues(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS', problems) },
      timeoutMs: positive(env, 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', problems) ?? positive(env, 'OTEL_EXPORTER_OTLP_TIMEOUT', problems) ?? 10_000,
      compression: compressionFrom(env, problems),
    },
    batch: batchFrom(env, problems),
    problems: [...problems, ...protocolProblems(env)],
  };
}

function value(env: Env, name: string): string | undefined {
  const text = env[name]?.trim();
  return text === undefined || text === '' ? undefined : text;
}

function samplerFrom(env: Env, problems: string[]): OtelSettings['sampler'] {
  let kind = (value(env, 'OTEL_TRACES_SAMPLER')?.toLowerCase() ?? 'parentbased_always_on') as SamplerKind;
  if (!SAMPLERS.has(kind)) {
    problems.push(`OTEL_TRACES_SAMPLER: "${kind}" is not one of ${[...SAMPLERS].join(', ')}; using parentbased_always_on`);
    kind = 'parentbased_always_on';
  }
  let ratio = 1;
  const arg = value(env, 'OTEL_TRACES_SAMPLER_ARG');
  if (arg !== undefined && kind.endsWith('traceidratio')) {
    const parsed = Number(arg);
    if (Number.isFinite(parsed) && parsed >= 0 && parsed <= 1) ratio = parsed;
    else problems.push(`OTEL_TRACES_SAMPLER_ARG: "${arg}" is not a ratio between 0 and 1; using 1`);
  }
  return { kind, ratio };
}

function exportingFrom(env: Env, problems: string[]): boolean {
  const exporters = (value(env, 'OTEL_TRACES_EXPORTER') ?? 'otlp').toLowerCase().split(',').map((name) => name.trim());
  if (exporters.includes('none')) return false;
  const others = exporters.filter((name) => name !== 'otlp');
  if (others.length > 0) problems.push(`OTEL_TRACES_EXPORTER: meshlet exports with OTLP/HTTP only; ignoring ${others.join(', ')}`);
  return true;
}

/** The signal-specific endpoint is used as it is; the general one gets `/v1/traces` appended (spec). */
function endpointFrom(env: Env): string {
  const specific = value(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  if (specific !== undefined) return specific;
  const general = value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (general !== undefined) return `${general.endsWith('/') ? general : `${general}/`}v1/traces`;
  return 'http://localhost:4318/v1/traces';
}

function compressionFrom(env: Env, problems: string[]): 'gzip' | 'none' {
  const name = value(env, 'OTEL_EXPORTER_OTLP_TRACES_COMPRESSION') !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_COMPRESSION' : 'OTEL_EXPORTER_OTLP_COMPRESSION';
  const given = value(env, name)?.toLowerCase();
  if (given === undefined || given === 'none' || given === 'gzip') return given ?? 'none';
  problems.push(`${name}: "${given}" is neither gzip nor none; sending uncompressed`);
  return 'none';
}

/** The exporter speaks OTLP over HTTP with JSON bodies, which collectors take on :4318 alongside protobuf. */
function protocolProblems(env: Env): string[] {
  const name = value(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = value(env, name);
  if (protocol === undefined || protocol === 'http/json' || protocol === 'http/protobuf') return [];
  return [`${name}: meshlet sends OTLP over HTTP (JSON), not ${protocol}; point the endpoint at the collector's HTTP port (4318)`];
}

/** The batch span processor's bounds (OTEL_BSP_*): the queue is what caps memory when the collector is down. */
function batchFrom(env: Env, problems: string[]): OtelSettings['batch'] {
  const maxQueueSize = positive(env, 'OTEL_BSP_MAX_QUEUE_SIZE', problems) ?? 2048;
  return {
    maxQueueSize,
    maxExportBatchSize: Math.min(maxQueueSize, positive(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', problems) ?? 512),
    scheduledDelayMs: positive(env, 'OTEL_BSP_SCHEDULE_DELAY', problems) ?? 5000,
    exportTimeoutMs: positive(env, 'OTEL_BSP_EXPORT_TIMEOUT', problems) ?? 30_000,
  };
}

function positive(env: Env, name: string, problems: string[]): number | undefined {
  const text = value(env, name);
  if (text === undefined) return undefined;
  const parsed = Number(text);
  if (Number.isInteger(parsed) && parsed > 0) return parsed;
  problems.push(`${name}: "${text}" is not a positive whole number; using the default`);
  return undefined;
}

/** `key1=value1,key2=value2` with percent-encoded values (W3C Baggage octets), as the spec has it. */
function keyValues(env: Env, name: string, problems: string[]): Record<string, string> {
  const text = value(env, name);
  const pairs: Record<string, string> = {};
  if (text === undefined) return pairs;
  for (const item of text.split(',')) {
    if (item.trim() === '') continue;
    const equals = item.indexOf('=');
    const key = equals < 0 ? '' : item.slice(0, equals).trim();
    if (key === '') {
      problems.push(`${name}: "${item.trim()}" is not key=value; ignored`);
      continue;
    }
    try {
      pairs[key] = decodeURIComponent(item.slice(equals + 1).trim());
    } catch {
      problems.push(`${name}: the value of ${key} is not valid percent-encoding; ignored`);
    }
  }
  return pairs;
}
