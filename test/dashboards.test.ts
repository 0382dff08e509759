import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { promtool } from './helpers/promtool.ts';
import { dashboardFiles, panelQueries, readDashboard, type Dashboard } from './helpers/dashboards.ts';

const DIR = new URL('../dashboards/', import.meta.url);

test('the alert rules pass promtool check rules', async (t) => {
  const result = await promtool(['check', 'rules', new URL('alerts.yaml', DIR).pathname]);
  t.is(result.code, 0, result.output);
  t.regex(result.output, /SUCCESS: 5 rules found/);
});

test('the alert rules pass their promtool unit tests (each alert fires when it should, and not before)', async (t) => {
  const result = await promtool(['test', 'rules', new URL('alerts.test.yaml', DIR).pathname]);
  t.is(result.code, 0, result.output);
});

test('every alert has a severity, a summary and a description', async (t) => {
  const rules = parse(await readFile(new URL('alerts.yaml', DIR), 'utf8')) as { groups: { rules: Record<string, any>[] }[] };
  const alerts = rules.groups.flatMap((g) => g.rules);
  t.deepEqual(alerts.map((a) => a.alert).sort(), [
    'MeshletCircuitBreakerOpen', 'MeshletHighErrorRatio', 'MeshletPrimaryUnhealthy', 'MeshletRetryBudgetExhausted', 'MeshletSidecarDown',
  ]);
  for (const alert of alerts) {
    t.truthy(alert.labels?.severity, alert.alert);
    t.truthy(alert.annotations?.summary, alert.alert);
    t.truthy(alert.annotations?.description, alert.alert);
  }
});

const eachDashboard = test.macro(async (t, check: (t: import('ava').ExecutionContext, file: string, dashboard: Dashboard) => void) => {
  const files = await dashboardFiles();
  t.deepEqual(files, ['meshlet-overview.json', 'meshlet-resilience.json']);
  for (const file of files) check(t, file, await readDashboard(file));
});

test('dashboards: classic JSON, a stable uid, the datasource, job, instance and service variables', eachDashboard, (t, file, dashboard) => {
  t.is(`${dashboard.uid}.json`, file, 'the uid is the file name, so links to it never break');
  t.is(typeof dashboard.schemaVersion, 'number');
  t.deepEqual(dashboard.templating.list.map((v) => v.name), ['datasource', 'job', 'instance', 'service'], file);
  t.is(dashboard.templating.list[0]!.type, 'datasource');
  t.is(dashboard.templating.list[0]!.query, 'prometheus');
});

test('dashboards: every panel has a unit, its queries use the datasource variable, the selectors and $__rate_interval', eachDashboard, (t, file, dashboard) => {
  const ids = new Set<number>();
  for (const panel of dashboard.panels) {
    t.false(ids.has(panel.id), `${file}: panel id ${panel.id} is unique`);
    ids.add(panel.id);
    t.true(panel.gridPos.x + panel.gridPos.w <= 24, `${file}: ${panel.title} fits the grid`);
    if (panel.type === 'row') continue;
    t.truthy(panel.fieldConfig?.defaults?.unit, `${file}: ${panel.title} has a unit`);
    t.true((panel.targets ?? []).length > 0, `${file}: ${panel.title} has queries`);
  }
  for (const { panel, target } of panelQueries(dashboard)) {
    const where = `${file}: ${panel} ${target.refId}`;
    t.is(target.datasource?.uid, '${datasource}', where);
    t.regex(target.expr, /job=~"\$job",instance=~"\$instance"/, `${where} selects by job and instance`);
    if (!/^sum\(up\{/.test(target.expr)) t.regex(target.expr, /service=~"\$service"/, `${where} selects by service`);
    for (const range of target.expr.matchAll(/\b(rate|increase|max_over_time)\([^\[]*\[([^\]]+)\]/g)) {
      t.is(range[2], '$__rate_interval', `${where}: ${range[1]} over $__rate_interval`);
    }
  }
});

test('the Grafana provisioning files load this folder\'s dashboards and a Prometheus data source', async (t) => {
  const provider = parse(await readFile(new URL('dashboards/meshlet.yaml', DIR), 'utf8')) as { providers: { type: string; options: { path: string } }[] };
  t.is(provider.providers[0]!.type, 'file');
  t.is(provider.providers[0]!.options.path, '/etc/grafana/provisioning', 'the folder is mounted there, JSON files at its root');
  const datasources = parse(await readFile(new URL('datasources/meshlet-prometheus.yaml', DIR), 'utf8')) as { datasources: { type: string; uid: string }[] };
  t.is(datasources.datasources[0]!.type, 'prometheus');
  t.deepEqual((await readdir(DIR)).filter((f) => f.endsWith('.json')).sort(), await dashboardFiles());
});
