/**
 * How many client connections a proxy listener may hold. Requests are limited separately
 * (`maxConcurrentRequests`); this bounds what an idle or slow client costs in file descriptors, so
 * that a flood of connections can never take the descriptors that the admin listener (liveness and
 * readiness probes), the primary's health check, the logs and the upstream connections need.
 *
 * `auto`, from the process's soft descriptor limit N (`ulimit -n`):
 *   per listener = floor((N - RESERVED) / 4)
 * Each proxied client connection may hold one upstream connection (2 descriptors), and the two proxy
 * listeners share what is left after RESERVED, so both at their limit use at most N - RESERVED.
 * N = 1,024 gives 224 per listener; N = 1,048,576 (a common container default) gives 262,112.
 */
import { readFileSync } from 'node:fs';

/** Descriptors kept for everything but proxied connections: admin, probe, stdio, logs, registry. */
export const RESERVED_DESCRIPTORS = 128;
/** The admin listener's own bound: probes and scrapes need few connections. */
export const ADMIN_MAX_CONNECTIONS = 64;
/** Used when the limit cannot be read (no /proc): Linux's usual soft default. */
const FALLBACK_DESCRIPTORS = 1024;

/** The soft limit on open files, read once at start (`/proc/self/limits`). */
export function descriptorLimit(limitsFile = '/proc/self/limits'): number {
  try {
    const line = readFileSync(limitsFile, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    if (soft === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const value = Number(soft);
    return Number.isInteger(value) && value > 0 ? value : FALLBACK_DESCRIPTORS;
  } catch {
    return FALLBACK_DESCRIPTORS;
  }
}

/** The connection limit of one proxy listener: the configured number, or the `auto` arithmetic above. */
export function maxConnections(configured: number | 'auto', descriptors: number): number {
  if (configured !== 'auto') return configured;
  return Math.max(16, Math.floor((descriptors - RESERVED_DESCRIPTORS) / 4));
}
