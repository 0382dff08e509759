import test from 'ava';
import { Registry } from 'prom-client';
import { readdir, readFile } from 'node:fs/promises';
import { Metrics } from '../src/telemetry/metrics.ts';
import { CounterFamily, HistogramFamily } from '../src/telemetry/series.ts';

test('histogram series export cumulative buckets, sum and count in Prometheus text', async (t) => {
  const registry = new Registry();
  const histogram = new HistogramFamily(registry, 'demo_seconds', 'demo', ['route'], [0.1, 1]);
  const series = histogram.labels('a');
  for (const value of [0.05, 0.1, 0.5, 3]) series.observe(value);
  const text = await registry.metrics();
  t.regex(text, /^# TYPE demo_seconds histogram$/m);
  t.regex(text, /^demo_seconds_bucket\{le="0.1",route="a"\} 2$/m);
  t.regex(text, /^demo_seconds_bucket\{le="1",route="a"\} 3$/m);
  t.regex(text, /^demo_seconds_bucket\{le="\+Inf",route="a"\} 4$/m);
  t.regex(text, /^demo_seconds_sum\{route="a"\} 3.65$/m);
  t.regex(text, /^demo_seconds_count\{route="a"\} 4$/m);
});

test('counter series are shared per label set', async (t) => {
  const registry = new Registry();
  const counter = new CounterFamily(registry, 'demo_total', 'demo', ['code']);
  counter.labels('200').inc();
  counter.labels('200').inc();
  counter.labels('503').inc();
  const text = await registry.metrics();
  t.regex(text, /^demo_total\{code="200"\} 2$/m);
  t.regex(text, /^demo_total\{code="503"\} 1$/m);
});

test('every metric the Grafana dashboards and alerts query is one meshlet exports', async (t) => {
  const metrics = new Metrics({ serviceName: 'dash' });
  t.teardown(() => metrics.close());
  const exported = await metrics.registry.metrics();
  const families = new Set([...exported.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]!));
  const dir = new URL('../dashboards/', import.meta.url);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json') || f === 'alerts.yaml');
  t.is(files.length, 3);
  for (const file of files) {
    const text = await readFile(new URL(file, dir), 'utf8');
    const names = new Set(text.match(/meshlet_[a-z0-9_]+/g));
    t.true(names.size > 0, file);
    for (const name of names) {
      const family = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
      t.true(families.has(family), `${file} queries ${name}, which meshlet does not export`);
    }
  }
});
