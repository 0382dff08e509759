/**
 * Candidate breaker settings: `--set circuitBreaker.window=5s` (the CLI) or `{"circuitBreaker":
 * {"window": "5s"}}` (POST /breakers/NAME/what-if), relative to an upstream's policy. They are
 * checked by laying them where they would go in a config file and parsing that with meshlet's own
 * loader, so that a bad key or value gets the message `meshlet validate` would print for it, at the
 * same key path (`upstreams.search.circuitBreaker.window: not a duration: ...`).
 */
import { parse as parseYamlValue } from 'yaml';
import { deepMerge, parseConfig } from '../config/load.ts';
import type { MeshletConfig } from '../config/schema.ts';
import type { BreakerSettings } from '../resilience/breaker.ts';

/** The primary's breaker is `inbound.circuitBreaker`; every other upstream's, `upstreams.NAME.circuitBreaker`. */
const PRIMARY = 'primary';

export type Checked<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/** Where an upstream's policy sits in a config file. */
export function policyPath(upstream: string): string[] {
  return upstream === PRIMARY ? ['inbound'] : ['upstreams', upstream];
}

/**
 * `KEY=VALUE` pairs as one policy-relative object; each VALUE is read as YAML, as in a config file
 * (`30` is a number, `5s` a string, `[reset, "503"]` a list).
 */
export function overlayFromSets(sets: readonly string[]): Checked<Record<string, unknown>> {
  let overlay: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const set of sets) {
    const equals = set.indexOf('=');
    const key = set.slice(0, equals);
    if (equals <= 0 || key.split('.').some((part) => part === '')) {
      problems.push(`--set ${set}: expected KEY=VALUE, e.g. circuitBreaker.window=5s`);
      continue;
    }
    let value: unknown;
    try {
      value = parseYamlValue(set.slice(equals + 1));
    } catch (error) {
      problems.push(`--set ${set}: the value is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
      continue;
    }
    overlay = deepMerge(overlay, nest(key.split('.'), value ?? '')) as Record<string, unknown>;
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: overlay };
}

/**
 * Check `overlay` for `upstream` as `meshlet validate` would, and lay it over the settings in force
 * (null: no breaker). The result is null when the candidate turns the breaker off.
 */
export function candidateSettings(upstream: string, overlay: unknown, inForce: BreakerSettings | null): Checked<BreakerSettings | null> {
  const path = policyPath(upstream);
  const parsed = parseConfig(deepMerge({ service: { name: 'what-if' } }, nest(path, overlay)));
  if (!parsed.ok) return { ok: false, problems: parsed.problems };
  const given = overlay as Record<string, unknown>;
  const others = Object.keys(given).filter((key) => key !== 'circuitBreaker');
  if (others.length > 0) {
    return { ok: false, problems: others.map((key) => `${[...path, key].join('.')}: only circuitBreaker settings can be replayed`) };
  }
  const asked = (given.circuitBreaker ?? {}) as Record<string, unknown>;
  const { enabled: _enabled, ...resolved } = breakerOf(parsed.config, upstream);
  if (asked.enabled === false) return { ok: true, value: null };
  const base: BreakerSettings = inForce ?? resolved;
  const picked = Object.fromEntries(Object.keys(asked).filter((key) => key !== 'enabled').map((key) => [key, resolved[key as keyof BreakerSettings]]));
  return { ok: true, value: { ...base, ...picked } };
}

/**
 * The settings in force for `upstream` in a parsed config (null: its breaker is off). A name the
 * config does not list (found in the registry) has the defaults.
 */
export function settingsInForce(config: MeshletConfig, upstream: string): BreakerSettings | null {
  const { enabled, ...settings } = breakerOf(config, upstream);
  return enabled ? settings : null;
}

function breakerOf(config: MeshletConfig, upstream: string): MeshletConfig['defaults']['circuitBreaker'] {
  return upstream === PRIMARY ? config.inbound.circuitBreaker : (config.upstreams[upstream]?.circuitBreaker ?? config.defaults.circuitBreaker);
}

function nest(path: readonly string[], value: unknown): unknown {
  return path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value);
}
