/**
 * Config problems in meshlet's words, one line each: `key.path: message`. A bad value is echoed
 * (`must be >= 0 (got -1)`), short and with secrets redacted as GET /config redacts them; a problem
 * an environment variable caused names it (`(from MESHLET__INBOUND__TIMEOUT__IDLE)`); an unknown key
 * comes with the key probably meant (`did you mean "drainTimeout"?`).
 *
 * A message may say how to fix the problem after a colon (`not a duration: use e.g. 10s`); the
 * value and its origin go before that colon, next to what is wrong.
 */
import type { z } from 'zod';
import type { EnvOverride } from './env.ts';
import { isSecretKey, redact, REDACTED } from './redact.ts';
import { configSchema } from './schema.ts';
import { closestKey, knownKeysAt } from './suggest.ts';

/** Parse options for the config schema: messages in meshlet's words, and each issue's input kept. */
export const PARSE_OPTIONS = { error: describeIssue, reportInput: true } as const;

/** Longest echo of a bad value, in characters; longer ones are cut with `…`. */
const MAX_VALUE_CHARS = 40;

/** One line per problem; each unknown key gets its own line. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], overrides: readonly EnvOverride[]): string[] {
  return issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => unknownKey([...issue.path, key], overrides));
    const origins = blame(issue.path, overrides).map((override) => override.variable);
    const facts: string[] = [];
    // An invalid record key's input is the key itself, already in the path.
    if (issue.input !== undefined && issue.code !== 'invalid_key') facts.push(`got ${showValue(issue.input, issue.path)}`);
    if (origins.length > 0) facts.push(`from ${origins.join(', ')}`);
    const message = issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
    return [`${keyPath(issue.path)}: ${withFacts(message, facts)}`];
  });
}

function unknownKey(path: readonly PropertyKey[], overrides: readonly EnvOverride[]): string {
  const origins = blame(path, overrides);
  const meant = closestKey(String(path.at(-1)), knownKeysAt(configSchema, path.slice(0, -1)));
  let line = `${keyPath(path)}: unknown key`;
  if (origins.length > 0) line += ` (from ${origins.map((override) => override.variable).join(', ')})`;
  if (meant === undefined) return line;
  const variable = origins.length === 1 ? correctedVariable(origins[0]!, path.length - 1, meant) : undefined;
  return `${line}, did you mean ${variable ?? JSON.stringify(meant)}?`;
}

/**
 * The variable that would have set the key meant (`MESHLET__INBOUND__TIMEOUTS__IDLE`), when the
 * unknown key is one of its names rather than a key inside the value it set.
 */
function correctedVariable(override: EnvOverride, index: number, meant: string): string | undefined {
  const [prefix, ...segments] = override.variable.split('__');
  if (index >= segments.length) return undefined;
  segments[index] = meant.toUpperCase();
  return [prefix, ...segments].join('__');
}

/**
 * The variable that set the value at `path` (or the value it is in): the last applied of those
 * whose key path leads there. Else the variables that made the key on their way deeper down.
 */
function blame(path: readonly PropertyKey[], overrides: readonly EnvOverride[]): EnvOverride[] {
  const involved = overrides.filter(
    (override) =>
      path.length > override.fromFile &&
      path.every((key, i) => i >= override.path.length || String(key) === override.path[i]),
  );
  const setter = involved.findLast((override) => override.path.length <= path.length);
  return setter === undefined ? involved : [setter];
}

function withFacts(message: string, facts: readonly string[]): string {
  if (facts.length === 0) return message;
  const note = ` (${facts.join(', ')})`;
  const hint = message.indexOf(': ');
  return hint < 0 ? `${message}${note}` : `${message.slice(0, hint)}${note}${message.slice(hint)}`;
}

/** A value as the user would recognise it, short, with secrets redacted (src/config/redact.ts). */
function showValue(value: unknown, path: readonly PropertyKey[]): string {
  if (path.some((key) => isSecretKey(String(key)))) return REDACTED;
  if (typeof value === 'string') return JSON.stringify(truncate(redact(value) as string, MAX_VALUE_CHARS - 2));
  if (typeof value !== 'object' || value === null) return String(value);
  try {
    return truncate(JSON.stringify(redact(value)), MAX_VALUE_CHARS);
  } catch {
    return Array.isArray(value) ? 'a list that contains itself' : 'a map that contains itself'; // YAML aliases
  }
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function keyPath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.') || '(root)';
}

/** Messages in meshlet's words (`must be >= 0`), used where a field does not set its own. */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'is required' : `must be ${article(issue.expected)}`;
    case 'too_small':
      if (issue.origin === 'array') return `must have at least ${issue.minimum} item(s)`;
      return `must be ${issue.inclusive === false ? '>' : '>='} ${issue.minimum}`;
    case 'too_big':
      return `must be ${issue.inclusive === false ? '<' : '<='} ${issue.maximum}`;
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
