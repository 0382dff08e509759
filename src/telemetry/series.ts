/**
 * Request-path metrics as plain numbers, formatted only when Prometheus scrapes.
 *
 * prom-client's labelled children re-hash and re-validate their labels on every call; on the request
 * path that costs more than the proxying around it. These families hand out one series object per
 * label set (created once, cached by the caller), whose update is a field increment. They register in a
 * prom-client Registry like any other metric, so /metrics output is unchanged.
 */
import type { Registry } from 'prom-client';

type Labels = Record<string, string | number>;
/** An exemplar as prom-client's exposition reads it; `timestamp` in seconds. */
export type Exemplar = { labelSet: Labels; value: number; timestamp: number };
type Sample = { value: number; labels: Labels; metricName?: string; exemplar?: Exemplar };

abstract class Family<S> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = 'sum' as const;
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  protected readonly labelNames: readonly string[];
  protected readonly series = new Map<string, { labels: Labels; series: S }>();

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    registry.registerMetric(this as never);
  }

  /** The series for these label values, in `labelNames` order. Cache it: this is not for the hot path. */
  labels(...values: string[]): S {
    const key = values.join('\u0000');
    let entry = this.series.get(key);
    if (entry === undefined) {
      const labels: Labels = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i] ?? ''));
      entry = { labels, series: this.create() };
      this.series.set(key, entry);
    }
    return entry.series;
  }

  protected abstract create(): S;
  protected abstract samples(labels: Labels, series: S): Sample[];

  /** Called by the Registry at scrape time. */
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const { labels, series } of this.series.values()) values.push(...this.samples(labels, series));
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    this.series.clear();
  }
}

export class CounterSeries {
  value = 0;
  inc(): void {
    this.value++;
  }
}

export class GaugeSeries extends CounterSeries {
  dec(): void {
    this.value--;
  }
}

/** Families whose series are one number each. */
abstract class ValueFamily<S extends CounterSeries> extends Family<S> {
  protected samples(labels: Labels, series: S): Sample[] {
    return [{ value: series.value, labels }];
  }
}

export class CounterFamily extends ValueFamily<CounterSeries> {
  readonly type = 'counter' as const;
  protected create(): CounterSeries {
    return new CounterSeries();
  }
}

export class GaugeFamily extends ValueFamily<GaugeSeries> {
  readonly type = 'gauge' as const;
  protected create(): GaugeSeries {
    return new GaugeSeries();
  }
}

export class HistogramSeries {
  /** Per-bucket (not cumulative) counts; the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  /** The latest traced observation of each bucket; made at the first one (tracing and OpenMetrics only). */
  exemplars: BucketExemplars | null = null;
  private readonly bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Count `value`; returns the index of its bucket. */
  observe(value: number): number {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
    return i;
  }

  /** Count `value` and keep it as its bucket's exemplar, linked to the trace `traceId`. */
  observeTraced(value: number, traceId: string, nowMs: number): void {
    const bucket = this.observe(value);
    (this.exemplars ??= new BucketExemplars(this.counts.length)).keep(bucket, traceId, value, nowMs);
  }
}

/** One exemplar per bucket, the latest, as OpenMetrics allows: the trace that shows a typical case. */
export class BucketExemplars {
  readonly traceIds: string[];
  readonly values: Float64Array;
  readonly timesMs: Float64Array;

  constructor(buckets: number) {
    this.traceIds = new Array<string>(buckets).fill('');
    this.values = new Float64Array(buckets);
    this.timesMs = new Float64Array(buckets);
  }

  keep(bucket: number, traceId: string, value: number, nowMs: number): void {
    this.traceIds[bucket] = traceId;
    this.values[bucket] = value;
    this.timesMs[bucket] = nowMs;
  }

  /** The exemplar of `bucket`, if it has one. */
  at(bucket: number): Exemplar | undefined {
    const traceId = this.traceIds[bucket]!;
    if (traceId === '') return undefined;
    return { labelSet: { trace_id: traceId }, value: this.values[bucket]!, timestamp: this.timesMs[bucket]! / 1000 };
  }
}

export class HistogramFamily extends Family<HistogramSeries> {
  readonly type = 'histogram' as const;
  private readonly bounds: readonly number[];

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[], bounds: readonly number[]) {
    super(registry, name, help, labelNames);
    this.bounds = bounds;
  }

  protected create(): HistogramSeries {
    return new HistogramSeries(this.bounds);
  }

  protected samples(labels: Labels, series: HistogramSeries): Sample[] {
    const samples: Sample[] = [];
    let cumulative = 0;
    for (let i = 0; i <= this.bounds.length; i++) {
      cumulative += series.counts[i]!;
      const le = i < this.bounds.length ? this.bounds[i]! : '+Inf';
      const sample: Sample = { value: cumulative, labels: { le, ...labels }, metricName: `${this.name}_bucket` };
      const exemplar = series.exemplars?.at(i);
      if (exemplar !== undefined) sample.exemplar = exemplar;
      samples.push(sample);
    }
    samples.push({ value: series.sum, labels, metricName: `${this.name}_sum` });
    samples.push({ value: series.count, labels, metricName: `${this.name}_count` });
    return samples;
  }
}
