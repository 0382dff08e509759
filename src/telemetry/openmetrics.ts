/**
 * The OpenMetrics exposition (what Prometheus asks for first), written here rather than by prom-client:
 * its OpenMetrics mode renames counters in place (`metric.name` loses `_total` for good), which breaks
 * every later scrape in the Prometheus text format from the same registry, and only OpenMetrics
 * carries exemplars, the trace ids on latency buckets.
 *
 * Families keep their Prometheus names except counters, whose family name drops `_total` while their
 * samples keep it (OpenMetrics 1.0, "Counter").
 */
import type { Registry } from 'prom-client';
import type { Exemplar } from './series.ts';

/** The media type a scrape names in Accept to get this format. */
export const OPENMETRICS_TYPE = 'application/openmetrics-text';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

type Labels = Record<string, string | number>;
type Sample = { value: number; labels?: Labels; metricName?: string; exemplar?: Exemplar | null };
type Family = { name: string; help: string; type: string; values?: Sample[] };

/** Every metric of `registry` (its default labels included) in the OpenMetrics text format. */
export async function openMetrics(registry: Registry): Promise<string> {
  const families = (await registry.getMetricsAsJSON()) as unknown as Family[];
  const lines: string[] = [];
  for (const family of families) {
    const counter = family.type === 'counter';
    const name = counter ? family.name.replace(/_total$/, '') : family.name;
    lines.push(`# TYPE ${name} ${family.type}`, `# HELP ${name} ${escape(family.help)}`);
    for (const sample of family.values ?? []) {
      let sampleName = sample.metricName ?? family.name;
      if (counter && !sampleName.endsWith('_total')) sampleName += '_total';
      let line = `${sampleName}${labelSet(sample.labels)} ${number(sample.value)}`;
      const exemplar = sample.exemplar;
      if (exemplar) line += ` # ${labelSet(exemplar.labelSet) || '{}'} ${number(exemplar.value)} ${exemplar.timestamp.toFixed(3)}`;
      lines.push(line);
    }
  }
  lines.push('# EOF', '');
  return lines.join('\n');
}

function labelSet(labels: Labels | undefined): string {
  if (labels === undefined) return '';
  const parts: string[] = [];
  for (const key in labels) parts.push(`${key}="${escape(String(labels[key]))}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** OpenMetrics escapes backslash, double quote and line feed in label values and help alike. */
function escape(text: string): string {
  return text.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function number(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
