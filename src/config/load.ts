/**
 * Loading the config: read YAML, lay environment overrides over it, validate, resolve each upstream's
 * policy. The environment is an argument so tests never touch `process.env`.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, policySchema, type MeshletConfig, type UpstreamConfig } from './schema.ts';
import { applyEnvOverrides, isPlainObject, type Env } from './env.ts';

export type LoadResult = { ok: true; config: MeshletConfig } | { ok: false; problems: string[] };

export const DEFAULT_CONFIG_PATH = 'config/meshlet.yaml';

/** The config file to use: the flag, else `MESHLET_CONFIG`, else `config/meshlet.yaml`. */
export function configPath(flag: string | undefined, env: Env): string {
  return flag ?? env.MESHLET_CONFIG ?? DEFAULT_CONFIG_PATH;
}

/** Read, override from `env`, and validate a config file. Never throws: problems are returned. */
export async function loadConfigFile(path: string, env: Env): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return { ok: false, problems: [`${path}: cannot read: ${(error as Error).message}`] };
  }
  return loadConfigText(text, env);
}

export function loadConfigText(text: string, env: Env): LoadResult {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (error) {
    return { ok: false, problems: [`(file): invalid YAML: ${(error as Error).message.split('\n')[0]}`] };
  }
  const overridden = applyEnvOverrides(raw, env);
  if (!overridden.ok) return overridden;
  return parseConfig(overridden.raw);
}

/** Validate a raw config object (as parsed from YAML). */
export function parseConfig(raw: unknown): LoadResult {
  const result = configSchema.safeParse(raw, { error: describeIssue });
  if (!result.success) return { ok: false, problems: result.error.issues.flatMap(formatIssue) };
  const rawObject = raw as { defaults?: object; upstreams?: Record<string, object> };
  const upstreams: Record<string, UpstreamConfig> = {};
  for (const [name, upstream] of Object.entries(result.data.upstreams)) {
    upstreams[name] = {
      endpoints: upstream.endpoints,
      ...resolvePolicy(rawObject.defaults, rawObject.upstreams?.[name]),
    };
  }
  return { ok: true, config: { ...result.data, upstreams } };
}

/**
 * An upstream's policy is `defaults` with the upstream's own keys laid over, key by key, so that
 * `timeouts: { firstByte: 5m }` on one upstream keeps the other default timeouts. Both inputs are
 * already valid, so this parse cannot fail.
 */
function resolvePolicy(defaults: object | undefined, override: object | undefined): UpstreamConfig {
  const { endpoints: _endpoints, ...overrides } = (override ?? {}) as Record<string, unknown>;
  return policySchema.parse(deepMerge(defaults ?? {}, overrides));
}

/** `over` laid over `base`, object by object; arrays and scalars in `over` replace. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) merged[key] = deepMerge(base[key], value);
  return merged;
}

/** Messages in meshlet's words (`must be >= 0`), used where a field does not set its own. */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'is required' : `must be ${article(issue.expected)}`;
    case 'too_small':
      return issue.origin === 'array' ? `must have at least ${issue.minimum} item(s)` : `must be >= ${issue.minimum}`;
    case 'too_big':
      return `must be <= ${issue.maximum}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_format':
      return issue.format === 'starts_with' ? undefined : `must be a valid ${issue.format}`;
    default:
      return undefined;
  }
}

function article(expected: string): string {
  if (expected === 'int') return 'an integer';
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

/** One line per problem, `key.path: message`; each unknown key gets its own line. */
function formatIssue(issue: z.core.$ZodIssue): string[] {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => `${path ? `${path}.` : ''}${key}: unknown key`);
  }
  if (issue.code === 'invalid_key') return [`${path}: ${issue.issues[0]?.message ?? issue.message}`];
  return [`${path || '(root)'}: ${issue.message}`];
}
