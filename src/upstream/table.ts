/**
 * The upstreams the outbound listener can reach, by name: the static endpoints of config, and names
 * the registry fills in (discovery/discovery-cache.ts): those configured without endpoints, and names
 * not configured at all (an agent that joined later), which get the `defaults` policy.
 *
 * Routing is one Map look-up, whatever the number of registered agents: discovery adds names and
 * replaces endpoint sets here, and a reload replaces upstreams here, off the request path.
 */
import type { MeshletConfig } from '../config/schema.ts';
import { Upstream, type UpstreamServices, type UpstreamStack } from './upstream.ts';

export class UpstreamTable {
  private readonly upstreams = new Map<string, Upstream>();
  /** Names whose endpoints config fixes: the registry never changes them. */
  private fixed = new Set<string>();
  /** Names only the registry knows (not configured): they follow `defaults`. */
  private readonly registryOnly = new Set<string>();
  private config: MeshletConfig;
  private readonly services: UpstreamServices;
  private readonly stack: UpstreamStack;

  constructor(config: MeshletConfig, services: UpstreamServices, stack: UpstreamStack) {
    this.config = config;
    this.services = services;
    this.stack = stack;
    for (const [name, upstream] of Object.entries(config.upstreams)) {
      this.upstreams.set(name, new Upstream(name, upstream, upstream.endpoints ?? [], services, 'outbound', stack));
    }
    this.fixed = fixedNames(config);
  }

  /** The upstream called `name` (lower-case), or undefined when it is neither configured nor registered. */
  get(name: string): Upstream | undefined {
    return this.upstreams.get(name);
  }

  /**
   * The registry lists `urls` for `name` now. A configured name keeps its policy; a new one is added
   * with `defaults`; one with static endpoints is left alone. A name whose last instance left stays,
   * with no endpoints (503 `no_healthy_endpoints`, not 404: it is known, and may come back).
   */
  discovered(name: string, urls: readonly string[]): void {
    if (this.fixed.has(name)) return;
    const upstream = this.upstreams.get(name);
    if (upstream !== undefined) {
      upstream.setEndpoints(urls);
    } else if (urls.length > 0) {
      this.upstreams.set(name, new Upstream(name, this.config.defaults, urls, this.services, 'outbound', this.stack));
      this.registryOnly.add(name);
    }
  }

  /**
   * Take a reloaded config's upstreams, each swapped in one step: new names are added, names gone are
   * removed (unless the registry lists them), and changed ones replaced by their successor
   * (Upstream.reconfigured). Requests in flight finish on the upstream they were routed to; what no
   * successor took is closed once they are done.
   */
  reconfigure(config: MeshletConfig): void {
    this.config = config;
    this.fixed = fixedNames(config);
    for (const [name, before] of this.upstreams) {
      const policy = config.upstreams[name] ?? (this.registryOnly.has(name) ? config.defaults : undefined);
      if (policy === undefined) {
        this.upstreams.delete(name);
        before.retire(null);
        continue;
      }
      if (config.upstreams[name] !== undefined) this.registryOnly.delete(name);
      // Without static endpoints, the ones the registry gave stay.
      const after = before.reconfigured(policy, config.upstreams[name]?.endpoints ?? before.endpoints.map((e) => e.url));
      if (after === before) continue;
      this.upstreams.set(name, after);
      before.retire(after);
    }
    for (const [name, policy] of Object.entries(config.upstreams)) {
      if (this.upstreams.has(name)) continue;
      this.upstreams.set(name, new Upstream(name, policy, policy.endpoints ?? [], this.services, 'outbound', this.stack));
    }
  }

  all(): Upstream[] {
    return [...this.upstreams.values()];
  }

  close(): Promise<unknown> {
    return Promise.all(this.all().map((u) => u.close()));
  }
}

function fixedNames(config: MeshletConfig): Set<string> {
  return new Set(Object.entries(config.upstreams).flatMap(([name, upstream]) => (upstream.endpoints === undefined ? [] : [name])));
}
