/**
 * What a reload changes: the key paths whose values differ between the config in force and the new
 * one, and which of them can only take effect with a restart.
 */
import type { MeshletConfig } from './schema.ts';

/**
 * Keys a running sidecar cannot change: its listeners' addresses and socket-level settings, what it
 * registers as and where, its health probe, and telemetry set up at start. A reload reports them and
 * keeps their values in force until the next restart.
 */
const RESTART_ONLY = [
  'service.name',
  'admin.listen',
  'inbound.listen',
  'outbound.listen',
  'inbound.primary',
  'inbound.healthCheck',
  'inbound.trustForwardedHeaders',
  'outbound.trustForwardedHeaders',
  'inbound.upgradeTypes',
  'outbound.upgradeTypes',
  'registry',
  'telemetry',
  ...['inbound', 'outbound'].flatMap((listener) =>
    ['maxHeaderBytes', 'headersTimeout', 'maxConnections', 'maxTunnels', 'tunnelHalfCloseTimeout'].map((key) => `${listener}.limits.${key}`),
  ),
];

export function isRestartOnly(key: string): boolean {
  return RESTART_ONLY.some((prefix) => key === prefix || key.startsWith(`${prefix}.`));
}

/** Key paths (`upstreams.search.retries.maxRetries`) whose values differ; arrays compare whole. */
export function changedKeys(before: unknown, after: unknown, path = ''): string[] {
  if (isPlainObject(before) && isPlainObject(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    return [...keys].flatMap((key) => changedKeys(before[key], after[key], path === '' ? key : `${path}.${key}`));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [path];
}

export type ReloadPlan = {
  /** The config to put in force: the new one, with restart-only keys as they are now. */
  config: MeshletConfig;
  /** Keys that change now. */
  changed: string[];
  /** Keys that differ but wait for a restart. */
  restartRequired: string[];
};

export function planReload(current: MeshletConfig, candidate: MeshletConfig): ReloadPlan {
  const all = changedKeys(current, candidate);
  const restartRequired = all.filter(isRestartOnly);
  const config = structuredClone(candidate);
  for (const key of restartRequired) setAt(config, key, structuredClone(getAt(current, key)));
  return { config, changed: all.filter((key) => !isRestartOnly(key)), restartRequired };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function getAt(root: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((node, part) => (isPlainObject(node) ? node[part] : undefined), root);
}

function setAt(root: unknown, key: string, value: unknown): void {
  const parts = key.split('.');
  const last = parts.pop()!;
  let node = root;
  for (const part of parts) {
    if (!isPlainObject(node)) return;
    node = node[part];
  }
  if (!isPlainObject(node)) return;
  if (value === undefined) delete node[last];
  else node[last] = value;
}
