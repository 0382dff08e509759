/**
 * The upstreams the outbound listener can reach, by name. Today: the static endpoints of config;
 * registry backends fill in names configured without endpoints, and names not configured at all.
 */
import type { MeshletConfig } from '../config/schema.ts';
import { Upstream, type UpstreamServices, type UpstreamStack } from './upstream.ts';

export class UpstreamTable {
  private readonly upstreams = new Map<string, Upstream>();

  constructor(config: MeshletConfig, services: UpstreamServices, stack: UpstreamStack) {
    for (const [name, upstream] of Object.entries(config.upstreams)) {
      this.upstreams.set(name, new Upstream(name, upstream, upstream.endpoints ?? [], services, 'outbound', stack));
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
