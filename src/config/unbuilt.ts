/**
 * Config keys that are accepted and validated but whose feature is not built yet. meshlet says so
 * once at start, so that nobody believes a retry or a breaker protects them when none does. Each entry
 * goes when its feature lands.
 */
import type { MeshletConfig } from './schema.ts';

/** The keys in `config` that ask for something meshlet does not do yet. */
export function unbuiltKeys(config: MeshletConfig): string[] {
  const keys: string[] = [];
  if (config.inbound.rateLimit.requestsPerSecond > 0) keys.push('inbound.rateLimit');
  if (config.registry.backend !== 'static') keys.push('registry.backend');
  for (const [name, upstream] of Object.entries(config.upstreams)) if (upstream.endpoints === undefined) keys.push(`upstreams.${name}.endpoints (registry lookup)`);
  return keys;
}
