/**
 * Loading the config: read YAML, lay environment overrides over it, validate, resolve each upstream's
 * policy. The environment is an argument so tests never touch `process.env`.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { parseDocument } from 'yaml';
import { configSchema, policySchema, type MeshletConfig, type UpstreamConfig } from './schema.ts';
import { applyEnvOverrides, isPlainObject, type Env, type EnvOverride } from './env.ts';
import { formatIssues, PARSE_OPTIONS } from './problems.ts';
import { DEFAULT_CONFIG_PATH } from './path.ts';

export type LoadResult = { ok: true; config: MeshletConfig } | { ok: false; problems: string[] };

export { configPath, DEFAULT_CONFIG_PATH } from './path.ts';

/** Read, override from `env`, and validate a config file. Never throws: problems are returned. */
export async function loadConfigFile(path: string, env: Env): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return { ok: false, problems: [`${path}: ${unreadable(path, error as NodeJS.ErrnoException)}`] };
  }
  return loadConfigText(text, env, path);
}

/** Why the file cannot be read, in one line (Node's message repeats the path and the errno name). */
function unreadable(path: string, error: NodeJS.ErrnoException): string {
  if (error.code === 'ENOENT') {
    const where = isAbsolute(path) ? '' : ` in ${process.cwd()}`;
    const choose = path === DEFAULT_CONFIG_PATH ? '; name one with --config FILE or MESHLET_CONFIG' : '';
    return `no such file${where}${choose}`;
  }
  if (error.code === 'EISDIR') return 'is a directory, not a config file';
  return `cannot read: ${error.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '')}`;
}

/** `file` names the source in a YAML syntax error. */
export function loadConfigText(text: string, env: Env, file = '(config)'): LoadResult {
  const parsed = parseYamlText(text, file);
  if (!parsed.ok) return parsed;
  const overridden = applyEnvOverrides(parsed.raw, env);
  if (!overridden.ok) return overridden;
  return parseConfig(overridden.raw, overridden.overrides);
}

/**
 * The YAML's value, or its first error (later ones often follow from it) as one problem: the
 * library's message with line, column and the lines around, indented under the file's name.
 * A warning (an unresolved tag, an ambiguous indent) is a problem too: it means the file does not
 * say what its author thought.
 */
function parseYamlText(text: string, file: string): { ok: true; raw: unknown } | { ok: false; problems: string[] } {
  const document = parseDocument(text);
  const [first] = [...document.errors, ...document.warnings];
  if (first !== undefined) return { ok: false, problems: [`${file}: invalid YAML: ${indentExcerpt(first.message)}`] };
  try {
    return { ok: true, raw: document.toJS() ?? {} };
  } catch (error) {
    // An alias to an anchor not yet defined, or too many aliases (a "billion laughs" file).
    return { ok: false, problems: [`${file}: invalid YAML: ${(error as Error).message}`] };
  }
}

/** The message's first line, then its excerpt (code and caret) indented so it reads as one problem. */
function indentExcerpt(message: string): string {
  const [first = '', ...rest] = message.trimEnd().split('\n');
  while (rest[0] === '') rest.shift();
  return [first, ...rest.map((line) => (line === '' ? '' : `    ${line}`))].join('\n');
}

/**
 * Validate a raw config object (as parsed from YAML); `overrides` are the environment variables
 * laid over it, for problems to name.
 */
export function parseConfig(raw: unknown, overrides: readonly EnvOverride[] = []): LoadResult {
  const result = configSchema.safeParse(raw, PARSE_OPTIONS);
  if (!result.success) return { ok: false, problems: formatIssues(result.error.issues, overrides) };
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
