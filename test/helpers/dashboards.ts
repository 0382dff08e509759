/** Reading the Grafana dashboards in dashboards/ and their queries. */
import { readdir, readFile } from 'node:fs/promises';

const DIR = new URL('../../dashboards/', import.meta.url);

export type Target = { refId: string; expr: string; datasource?: { uid?: string } };
export type Panel = {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Target[];
};
export type Dashboard = {
  uid: string;
  title: string;
  schemaVersion: number;
  templating: { list: { name: string; type: string; query?: unknown; definition?: string }[] };
  annotations: { list: { name: string; expr?: string }[] };
  panels: Panel[];
};

export async function dashboardFiles(): Promise<string[]> {
  return (await readdir(DIR)).filter((file) => file.endsWith('.json')).sort();
}

export async function readDashboard(file: string): Promise<Dashboard> {
  return JSON.parse(await readFile(new URL(file, DIR), 'utf8')) as Dashboard;
}

/** Every query of every panel, with the panel's title. */
export function panelQueries(dashboard: Dashboard): { panel: string; target: Target }[] {
  return dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, target })));
}
