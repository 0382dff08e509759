/**
 * Environment overrides: `MESHLET__<KEY>__<KEY>...=<value>` sets the config key at that path, e.g.
 * `MESHLET__INBOUND__PRIMARY=http://127.0.0.1:9000` or `MESHLET__DEFAULTS__RETRIES__MAXRETRIES=0`.
 * Keys match case-insensitively; values are read as YAML (`[a, b]` is a list, `3` a number).
 * Upstream names are lower-cased: `MESHLET__UPSTREAMS__SEARCH__TIMEOUTS__TOTAL=30s`.
 */
import { parse as parseYaml } from 'yaml';
import { configSchema } from './schema.ts';

export type Env = Readonly<Record<string, string | undefined>>;

/** One environment override, kept so that a problem it caused can name it. */
export type EnvOverride = {
  /** The variable, e.g. `MESHLET__INBOUND__TIMEOUTS__IDLE`. */
  variable: string;
  /** The key path it sets, spelled as in the schema where the key is known. */
  path: readonly string[];
  /**
   * How many leading keys of `path` the config file already had as objects: a problem on the path
   * below them (an unknown key the variable made, a bad value it set) is the variable's.
   */
  fromFile: number;
};

export type EnvResult = { ok: true; raw: unknown; overrides: EnvOverride[] } | { ok: false; problems: string[] };

const PREFIX = 'MESHLET__';

/** Every property name in the schema, by its lower-case spelling. */
const KEY_NAMES: ReadonlyMap<string, string> = collectKeyNames(configSchema);

/** `raw` with every `MESHLET__...` variable of `env` laid over it (a copy), and what each set. */
export function applyEnvOverrides(raw: unknown, env: Env): EnvResult {
  const names = Object.keys(env).filter((name) => name.startsWith(PREFIX)).sort();
  if (names.length === 0) return { ok: true, raw, overrides: [] };
  const root: Record<string, unknown> = isPlainObject(raw) ? structuredClone(raw) : {};
  const problems: string[] = [];
  const overrides: EnvOverride[] = [];
  for (const name of names) {
    const segments = name.slice(PREFIX.length).split('__').map((s) => s.toLowerCase());
    if (segments.some((s) => s === '')) {
      problems.push(`${name}: empty key segment`);
      continue;
    }
    const path = segments.map((segment) => KEY_NAMES.get(segment) ?? segment);
    overrides.push({ variable: name, path, fromFile: objectsInFile(raw, path) });
    let node = root;
    for (const [i, key] of path.entries()) {
      if (i === path.length - 1) {
        node[key] = readValue(env[name] ?? '');
      } else {
        if (!isPlainObject(node[key])) node[key] = {};
        node = node[key] as Record<string, unknown>;
      }
    }
  }
  return problems.length ? { ok: false, problems } : { ok: true, raw: root, overrides };
}

/** How many of the objects on the way to `path`'s last key the file has. */
function objectsInFile(raw: unknown, path: readonly string[]): number {
  let node = raw;
  let count = 0;
  while (count < path.length - 1 && isPlainObject(node) && isPlainObject(node[path[count]!])) {
    node = node[path[count]!];
    count++;
  }
  return count;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readValue(text: string): unknown {
  try {
    // logLevel: a YAML warning (an unknown tag, say) must not end up on stderr as a Node warning.
    return parseYaml(text, { logLevel: 'error' });
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
