/**
 * The upstreams the outbound listener can reach, by name: the static endpoints of config, and names
 * the registry fills in (discovery/discovery-cache.ts): those configured without endpoints, and names
 * not configured at all (an agent that joined later), which get the `defaults` policy.
 *
 * Routing is one Map look-up, whatever the number of registered agents: discovery adds names and
 * replaces endpoint sets here, off the request path.
 */
import type { MeshletConfig } from '../config/schema.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { Upstream, type UpstreamStack } from './upstream.ts';

export class UpstreamTable {
  private readonly upstreams = new Map<string, Upstream>();
  /** Names whose endpoints config fixes: the registry never changes them. */
  private readonly fixed = new Set<string>();
  private readonly config: MeshletConfig;
  private readonly metrics: Metrics;
  private readonly stack: UpstreamStack;

  constructor(config: MeshletConfig, metrics: Metrics, stack: UpstreamStack) {
    this.config = config;
    this.metrics = metrics;
    this.stack = stack;
    for (const [name, upstream] of Object.entries(config.upstreams)) {
      this.upstreams.set(name, new Upstream(name, upstream, upstream.endpoints ?? [], metrics, 'outbound', stack));
      if (upstream.endpoints !== undefined) this.fixed.add(name);
    }
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
    if (upstream !== undefined) upstream.setEndpoints(urls);
    else if (urls.length > 0) this.upstreams.set(name, new Upstream(name, this.config.defaults, urls, this.metrics, 'outbound', this.stack));
  }

  all(): Upstream[] {
    return [...this.upstreams.values()];
  }

  close(): Promise<unknown> {
    return Promise.all(this.all().map((u) => u.close()));
  }
}
