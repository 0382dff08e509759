/**
 * Registration and discovery, put together for the sidecar (sidecar.ts wires this one object): the
 * backend, the discovery cache it feeds into the upstream table, this sidecar's own registration, the
 * registry's metrics, and what GET /registry and /readyz say about them.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { MeshletConfig } from '../config/schema.ts';
import type { Runtime } from '../core/runtime.ts';
import type { UpstreamTable } from '../upstream/table.ts';
import { advertisedAddress } from './advertise.ts';
import { fetchAgentCard, PublishedCard, rewriteCard, summarize } from './agent-card.ts';
import { agentsOf, skillsOf } from './agents-view.ts';
import { createRegistry } from './create-registry.ts';
import { DiscoveryCache } from './discovery-cache.ts';
import { Registration, type PrimaryHealth } from './registration.ts';
import { newInstanceId, type Instance, type Registry, type RegistryBackend, type RegistryListener } from './registry.ts';
import { RegistryMetrics } from './registry-metrics.ts';

export class Discovery implements RegistryListener {
  readonly backend: RegistryBackend;
  readonly cache: DiscoveryCache;
  /** This sidecar's own registration; null with the static backend (nothing to register). */
  registration: Registration | null = null;
  private registry: Registry | null = null;
  /** The backend, being loaded while the listeners start (etcd's client takes ~150 ms to import). */
  private readonly loading: Promise<Registry>;
  private reachable = false;
  private loaded = false;
  private leaseLost = false;
  private unreachable: { reason: string; since: number } | null = null;
  private readonly config: MeshletConfig;
  private readonly logger: Logger;
  private readonly metrics: RegistryMetrics;
  private readonly id: string;
  private readonly card: PublishedCard;

  /** `card` is where the inbound listener finds the agent card it serves (agent-card.ts). */
  constructor(runtime: Runtime, table: UpstreamTable, card = new PublishedCard()) {
    this.card = card;
    this.config = runtime.config;
    this.logger = runtime.logger;
    this.backend = this.config.registry.backend;
    // Each join and leave is logged, except those of the first load, summed up in one line.
    this.cache = new DiscoveryCache(table, (change, { id, service, address }) => {
      if (this.loaded) this.logger.info({ service, id, address }, `instance ${change}`);
    });
    this.metrics = new RegistryMetrics(runtime.metrics.registry, this.backend, () => this.cache.size);
    this.id = newInstanceId(this.config.service.name);
    this.loading = createRegistry(this.config.registry, this);
    this.loading.catch(() => {}); // start() reports it; a sidecar that never starts must not crash on it
  }

  /** Follow the registry, and register once `primary` is healthy. `inbound` is the bound inbound address. */
  async start(inbound: AddressInfo, primary: PrimaryHealth): Promise<void> {
    const registry = await this.loading;
    this.registry = registry;
    registry.watch();
    if (this.backend === 'static') {
      const unresolved = Object.keys(this.config.upstreams).filter((name) => this.config.upstreams[name]!.endpoints === undefined);
      if (unresolved.length > 0) this.logger.warn({ upstreams: unresolved }, 'these upstreams have no endpoints and the registry is static: they answer 503 no_healthy_endpoints');
      return;
    }
    const address = advertisedAddress(this.config.registry.advertise, inbound, this.backend);
    this.registration = new Registration({
      registry,
      primary,
      describe: () => this.ownInstance(address),
      logger: this.logger,
      onChange: (registered) => this.metrics.registered(registered),
    });
    this.registration.start();
  }

  /** Why /readyz must fail on registration's account, or null. */
  notReady(): string | null {
    const registration = this.registration;
    if (registration === null || registration.registered) return null;
    return `not registered: ${registration.reason ?? registration.state}`;
  }

  /** Shutdown's first step: revoke the lease so that nobody picks this instance any more. */
  async deregister(): Promise<void> {
    await this.registration?.stop();
  }

  async close(): Promise<void> {
    this.registration?.close();
    await this.registry?.close();
  }

  /** What GET /registry shows. */
  describe(): object {
    const registration = this.registration;
    const instances = this.cache.list().sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
    return {
      backend: this.backend,
      reachable: this.reachable,
      ...(this.unreachable && { unreachable: { reason: this.unreachable.reason, since: new Date(this.unreachable.since).toISOString() } }),
      registration: registration && {
        state: registration.state,
        ...(registration.reason !== null && { reason: registration.reason }),
        instance: registration.instance,
        ...(registration.since !== null && { since: new Date(registration.since).toISOString() }),
      },
      agents: agentsOf(instances),
      skills: skillsOf(instances),
      instances,
    };
  }

  // RegistryListener: the backend reports here, from its timers and sockets.

  snapshot(instances: readonly Instance[]): void {
    this.cache.snapshot(instances);
    if (this.loaded || this.backend === 'static') return;
    this.loaded = true;
    this.logger.info({ backend: this.backend, instances: instances.length, services: new Set(instances.map((i) => i.service)).size }, 'registry loaded');
  }

  put(instance: Instance): void {
    this.cache.put(instance);
  }

  remove(id: string): void {
    this.cache.remove(id);
  }

  reachability(reachable: boolean, reason: string | null): void {
    this.reachable = reachable;
    this.metrics.reachable(reachable);
    if (reachable) {
      if (this.unreachable !== null) this.logger.info({ backend: this.backend }, 'registry reachable again');
      this.unreachable = null;
    } else {
      this.unreachable = { reason: reason ?? 'unreachable', since: Date.now() };
      this.logger.warn({ backend: this.backend, reason, instances: this.cache.size }, 'registry unreachable: serving the last known endpoints');
    }
  }

  lease(held: boolean, reason: string | null): void {
    if (!held && reason !== null) {
      this.leaseLost = true;
      this.logger.warn({ backend: this.backend, reason }, 'registration lease lost; re-granting');
    } else if (held && this.leaseLost) {
      this.leaseLost = false;
      this.logger.info({ backend: this.backend }, 'registration lease re-granted');
    }
    this.registration?.leaseChanged(held, reason);
  }

  /** Our instance, with what the primary's agent card says (read again at each registration). */
  private async ownInstance(address: string): Promise<Instance> {
    const instance: Instance = { id: this.id, service: this.config.service.name, address };
    const card = await fetchAgentCard(this.config.inbound.primary, this.config.inbound.healthCheck.timeout);
    this.card.body = card === null ? null : Buffer.from(JSON.stringify(rewriteCard(card, address)));
    if (card !== null) instance.agent = summarize(card);
    return instance;
  }
}
