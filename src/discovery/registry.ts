/**
 * The registry every backend implements (static, sqlite, etcd; Consul would be a fourth): a sidecar
 * publishes its own instance under a lease it keeps alive, and follows every live instance.
 *
 * A backend pushes what it learns to one `RegistryListener` (the discovery cache): the request path
 * never waits on a registry, it reads what the cache already put into the upstream table.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** The backends `registry.backend` names. */
export type RegistryBackend = 'static' | 'sqlite' | 'etcd';

/** A skill an agent card lists (A2A `AgentSkill`, the fields meshlet publishes). */
export type AgentSkill = { id: string; name?: string; description?: string; tags?: string[] };

/** What an agent card says about an agent, published with its registration. */
export type AgentSummary = {
  name: string;
  description?: string;
  skills: AgentSkill[];
  capabilities?: Record<string, unknown>;
};

/** One registered sidecar: the service it fronts and where other sidecars reach it. */
export type Instance = {
  /** Unique per process: a restarted sidecar never takes over (or deletes) a sibling's entry. */
  id: string;
  /** `service.name` of the sidecar that registered it. */
  service: string;
  /** The http:// origin of its inbound listener, as other hosts reach it. */
  address: string;
  /** From the primary's agent card, when it serves one. */
  agent?: AgentSummary;
};

/**
 * What a backend reports. Snapshots replace everything known; `put` and `remove` are changes to the
 * last one (watch events). Calls come from timers and sockets, never from the request path.
 */
export type RegistryListener = {
  /** Every live instance (first load, a poll, a re-list after a reconnect). */
  snapshot(instances: readonly Instance[]): void;
  /** An instance joined or changed. */
  put(instance: Instance): void;
  /** An instance left (deregistered, or its lease expired). */
  remove(id: string): void;
  /** The registry became reachable or not; while not, the last known instances keep serving. */
  reachability(reachable: boolean, reason: string | null): void;
  /** Our own lease was lost (`held` false; the backend re-grants it) or is held again. */
  lease(held: boolean, reason: string | null): void;
};

export interface Registry {
  readonly backend: RegistryBackend;
  /** Start following the live instances (reported to the listener). */
  watch(): void;
  /**
   * Publish `instance` under a lease and keep renewing it until `deregister()`; resolves once it is
   * visible to others. A lease lost meanwhile is re-granted and the instance published again.
   */
  register(instance: Instance): Promise<void>;
  /** Take our instance out at once (the lease revoked); resolves when it is gone or cannot be. */
  deregister(): Promise<void>;
  /** Stop everything; does not deregister (a crash would not either). */
  close(): Promise<void>;
}

/**
 * An instance id: the service, this host, this process and randomness, so that two processes never
 * share one (a restarted sidecar with a recycled pid included). Safe as one etcd key segment.
 */
export function newInstanceId(service: string): string {
  const host = hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-');
  return `${service}-${host}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Parse an instance as another sidecar wrote it; null when it is not one (a stray key, a newer format). */
export function parseInstance(text: string): Instance | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { id, service, address } = value as Record<string, unknown>;
  if (typeof id !== 'string' || typeof service !== 'string' || !SERVICE_NAME.test(service)) return null;
  if (typeof address !== 'string' || !isHttpOrigin(address)) return null;
  return value as Instance;
}

/** As `service.name` in the schema: what the outbound listener can route to. */
const SERVICE_NAME = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

function isHttpOrigin(text: string): boolean {
  const url = URL.parse(text);
  return url !== null && url.protocol === 'http:' && (url.pathname === '/' || url.pathname === '') && url.search === '';
}
