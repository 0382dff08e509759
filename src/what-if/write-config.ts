/**
 * `--write FILE`: the config file with the candidate settings in it, validated as `meshlet validate`
 * would, then written. Only the values set change in the text: each is spliced in where the YAML
 * parser says the old value is (or its map ends), so comments, alignment and layout stay as they
 * were and a diff shows just the change. (Re-serialising the document would re-flow the file.)
 * Putting it in force is the ordinary reload: move it over the config file (meshlet watches it),
 * or SIGHUP / POST /reload; the `config reloaded` log line names the keys that changed.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { isMap, parseDocument, stringify, type YAMLMap } from 'yaml';
import { loadConfigText } from '../config/load.ts';
import type { Env } from '../config/env.ts';
import { policyPath, type Checked } from './candidate.ts';

/** Write `source` with `overlay` laid over `upstream`'s policy to `target`; returns the key paths set. */
export async function writeCandidate(source: string, target: string, upstream: string, overlay: Record<string, unknown>, env: Env): Promise<Checked<string[]>> {
  let text: string;
  try {
    text = await readFile(source, 'utf8');
  } catch (error) {
    return { ok: false, problems: [`${source}: cannot read: ${(error as Error).message}`] };
  }
  const set: string[] = [];
  let written = text;
  for (const [path, value] of leaves(overlay)) {
    const keys = [...policyPath(upstream), ...path];
    written = setIn(written, keys, value);
    set.push(keys.join('.'));
  }
  const loaded = loadConfigText(written, env, target);
  if (!loaded.ok) return { ok: false, problems: loaded.problems };
  await writeFile(target, written);
  return { ok: true, value: set };
}

/** [key path, value] of every value in `overlay` that is not itself a map. */
function leaves(overlay: Record<string, unknown>, path: string[] = []): [string[], unknown][] {
  return Object.entries(overlay).flatMap(([key, value]) =>
    typeof value === 'object' && value !== null && !Array.isArray(value) ? leaves(value as Record<string, unknown>, [...path, key]) : [[[...path, key], value] as [string[], unknown]],
  );
}


/** `text` with the value at `keys` replaced, or added to the deepest map on the way that exists. */
function setIn(text: string, keys: readonly string[], value: unknown): string {
  const document = parseDocument(text);
  const node = document.getIn(keys, true) as { range?: [number, number, number] } | undefined;
  if (node?.range !== undefined) return splice(text, node.range[0], node.range[1], inline(value));
  let depth = keys.length - 1;
  while (depth > 0 && !isMap(document.getIn(keys.slice(0, depth), true))) depth--;
  const parent = (depth === 0 ? document.contents : document.getIn(keys.slice(0, depth), true)) as YAMLMap;
  // The keys missing below the map that exists, as one flow map: `circuitBreaker: { window: 5s }`.
  const missing = keys.slice(depth).reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as Record<string, unknown>;
  const [key, inner] = Object.entries(missing)[0]!;
  const entry = `${key}: ${inline(inner)}`;
  const [start, end] = parent.range!;
  const last = parent.items.at(-1) as { key: { range?: number[] }; value: { range?: number[] } | null } | undefined;
  if (parent.flow) {
    if (last === undefined) return splice(text, start, end, `{ ${entry} }`);
    const after = (last.value ?? last.key).range![1]!;
    return splice(text, after, after, `, ${entry}`);
  }
  const first = (parent.items[0]?.key as { range?: number[] } | undefined)?.range?.[0] ?? start;
  const indent = first - (text.lastIndexOf('\n', first - 1) + 1);
  const lineEnd = text.indexOf('\n', end - 1);
  const at = lineEnd === -1 ? text.length : lineEnd;
  return splice(text, at, at, `\n${' '.repeat(indent)}${entry}`);
}

function splice(text: string, start: number, end: number, insert: string): string {
  return text.slice(0, start) + insert + text.slice(end);
}

/** A value as it reads inline in YAML: `5s`, `30`, `[reset, "503"]`, `{ window: 5s }`. */
function inline(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(inline).join(', ')}]`;
  if (typeof value === 'object' && value !== null) return `{ ${Object.entries(value).map(([k, v]) => `${k}: ${inline(v)}`).join(', ')} }`;
  return stringify(value).trimEnd();
}
