/**
 * Human-friendly durations and sizes, as written in meshlet's YAML config.
 * Durations: `250ms`, `10s`, `5m`, `1h`, or `0` (disabled). Sizes: `512B`, `64KiB`, `1MiB`, `1GiB`.
 */

/**
 * What is wrong with a value that is not a duration or a size, then how to write one (the echoed
 * value goes before the colon: src/config/problems.ts).
 */
export const DURATION_HINT = 'not a duration: use e.g. 250ms, 10s, 5m, or 0';
export const SIZE_HINT = 'not a size: use e.g. 512B, 64KiB, or 1MiB';

/** What a duration looks like, for schemas and editors. */
export const DURATION_PATTERN = /^(0|\d+(\.\d+)?(ms|s|m|h))$/;
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export const SIZE_PATTERN = /^\d+(B|KiB|MiB|GiB)$/;
const SIZE = /^(\d+)(B|KiB|MiB|GiB)$/;
const SIZE_BYTES: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** Milliseconds for a duration string, or undefined when it is not one. `0` means disabled. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * DURATION_MS[match[2]!]!);
}

/** Bytes for a size string, or undefined when it is not one. */
export function parseSize(text: string): number | undefined {
  const match = SIZE.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * SIZE_BYTES[match[2]!]!;
}
