/**
 * Environment overrides: `MESHLET__<KEY>__<KEY>...=<value>` sets the config key at that path, e.g.
 * `MESHLET__INBOUND__PRIMARY=http://127.0.0.1:9000` or `MESHLET__DEFAULTS__RETRIES__MAXRETRIES=0`.
 * Keys match case-insensitively; values are read as YAML (`[a, b]` is a list, `3` a number).
 * Upstream names are lower-cased: `MESHLET__UPSTREAMS__SEARCH__TIMEOUTS__TOTAL=30s`.
 */
import { parse as parseYaml } from 'yaml';
import { configSchema } from './schema.ts';

export type Env = Readonly<Record<string, string | undefined>>;

const PREFIX = 'MESHLET__';

/** Every property name in the schema, by its lower-case spelling. */
const KEY_NAMES: ReadonlyMap<string, string> = collectKeyNames(configSchema);

export function applyEnvOverrides(
  raw: unknown,
  env: Env,
): { ok: true; raw: unknown } | { ok: false; problems: string[] } {
  const names = Object.keys(env).filter((name) => name.startsWith(PREFIX)).sort();
  if (names.length === 0) return { ok: true, raw };
  const root: Record<string, unknown> = isPlainObject(raw) ? structuredClone(raw) : {};
  const problems: string[] = [];
  for (const name of names) {
    const segments = name.slice(PREFIX.length).split('__').map((s) => s.toLowerCase());
    if (segments.some((s) => s === '')) {
      problems.push(`${name}: empty key segment`);
      continue;
    }
    let node = root;
    for (const [i, segment] of segments.entries()) {
      const key = KEY_NAMES.get(segment) ?? segment;
      if (i === segments.length - 1) {
        node[key] = readValue(env[name] ?? '');
      } else {
        if (!isPlainObject(node[key])) node[key] = {};
        node = node[key] as Record<string, unknown>;
      }
    }
  }
  return problems.length ? { ok: false, problems } : { ok: true, raw: root };
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readValue(text: string): unknown {
  try {
    return parseYaml(text);
  } catch {
    return text;
  }
}

type SchemaNode = { _zod: { def: Record<string, unknown> & { type: string } } };

function collectKeyNames(schema: unknown, into = new Map<string, string>()): Map<string, string> {
  const def = (schema as SchemaNode)._zod.def;
  const children: unknown[] = [];
  if (def.type === 'object') {
    for (const [key, child] of Object.entries(def.shape as Record<string, unknown>)) {
      into.set(key.toLowerCase(), key);
      children.push(child);
    }
  }
  for (const field of ['innerType', 'in', 'out', 'valueType', 'element']) {
    if (def[field]) children.push(def[field]);
  }
  if (Array.isArray(def.options)) children.push(...def.options);
  for (const child of children) collectKeyNames(child, into);
  return into;
}
