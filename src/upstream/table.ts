/**
 * The upstreams the outbound listener can reach, by name. Today: the static endpoints of config;
 * registry backends fill in names configured without endpoints, and names not configured at all.
 */
import type { MeshletConfig } from '../config/schema.ts';
import { Upstream, type UpstreamServices, type UpstreamStack } from './upstream.ts';

export class UpstreamTable {
  private readonly upstreams = new Map<string, Upstream>();
  private readonly services: UpstreamServices;
  private readonly stack: UpstreamStack;

  constructor(config: MeshletConfig, services: UpstreamServices, stack: UpstreamStack) {
    this.services = services;
    this.stack = stack;
    for (const [name, upstream] of Object.entries(config.upstreams)) {
      this.upstreams.set(name, new Upstream(name, upstream, upstream.endpoints ?? [], services, 'outbound', stack));
    }
  }

  /**
   * Take a reloaded config's upstreams, each swapped in one step: new names are added, names gone are
   * removed, and changed ones replaced by their successor (Upstream.reconfigured). Requests in flight
   * finish on the upstream they were routed to; what no successor took is closed once they are done.
   */
  reconfigure(config: MeshletConfig): void {
    for (const [name, policy] of Object.entries(config.upstreams)) {
      const before = this.upstreams.get(name);
      if (before === undefined) {
        this.upstreams.set(name, new Upstream(name, policy, policy.endpoints ?? [], this.services, 'outbound', this.stack));
        continue;
      }
      // Without static endpoints, the ones the registry gave stay.
      const after = before.reconfigured(policy, policy.endpoints ?? before.endpoints.map((e) => e.url));
      if (after === before) continue;
      this.upstreams.set(name, after);
      before.retire(after);
    }
    for (const [name, upstream] of this.upstreams) {
      if (Object.hasOwn(config.upstreams, name)) continue;
      this.upstreams.delete(name);
      upstream.retire(null);
    }
  }

  /** The upstream called `name` (lower-case), or undefined when it is neither configured nor registered. */
  get(name: string): Upstream | undefined {
    return this.upstreams.get(name);
  }

  all(): Upstream[] {
    return [...this.upstreams.values()];
  }

  close(): Promise<unknown> {
    return Promise.all(this.all().map((u) => u.close()));
  }
}
