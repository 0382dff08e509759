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
type Sample = { value: number; labels: Labels; metricName?: string };

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
  private readonly bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
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
      samples.push({ value: cumulative, labels: { le, ...labels }, metricName: `${this.name}_bucket` });
    }
    samples.push({ value: series.sum, labels, metricName: `${this.name}_sum` });
    samples.push({ value: series.count, labels, metricName: `${this.name}_count` });
    return samples;
  }
}
