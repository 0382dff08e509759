/**
 * The registry for clusters (`registry.backend: etcd`), through the `etcd3` client. Each instance is
 * the key `<prefix><service>/<instance id>` holding its JSON, bound to a lease the client keeps alive
 * (every ttl/3, as etcd's Go client does). When etcd no longer knows the lease (expired while this
 * sidecar was cut off, or revoked), a new one is granted and the key put again. Deregistration revokes
 * the lease, which deletes the key at once.
 *
 * Discovery lists the prefix once, then watches it from the next revision: no polling. After a lost
 * connection the client resumes the watch where it stopped, and the prefix is listed again, so that
 * the cache converges whatever happened meanwhile; a watch cancelled by etcd (history compacted) is
 * made again from a fresh list. While etcd is unreachable, the cache keeps what it had.
 *
 * Several endpoints may be given: the client spreads calls over them and moves away from a member
 * that fails (one of three may be lost).
 */
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen } from 'cockatiel';
import { Etcd3, isRecoverableError, type IKeyValue, type IOptions, type Lease, type Watcher } from 'etcd3';
import { parseInstance, type Instance, type Registry, type RegistryListener } from './registry.ts';

export type EtcdRegistryOptions = { endpoints: string[]; prefix: string; ttlMs: number };

/** Unary calls (grant, put, revoke, list) give up after this; streams (watch, keepalive) have no deadline. */
const CALL_DEADLINE_MS = 3_000;
const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 2_000;

export class EtcdRegistry implements Registry {
  readonly backend = 'etcd' as const;
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly ttlSeconds: number;
  private readonly listener: RegistryListener;
  private own: { key: string; value: string } | null = null;
  /** The lease our key is bound to, once granted and the key put under it. */
  private lease: Lease | null = null;
  private watcher: Watcher | null = null;
  private reachable: boolean | null = null;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(options: EtcdRegistryOptions, listener: RegistryListener) {
    this.listener = listener;
    this.prefix = options.prefix.endsWith('/') ? options.prefix : `${options.prefix}/`;
    // etcd counts leases in whole seconds (and raises a TTL below its minimum, 2 s with default timing).
    this.ttlSeconds = Math.max(1, Math.ceil(options.ttlMs / 1000));
    this.client = new Etcd3(clientOptions(options.endpoints));
  }

  watch(): void {
    void this.follow(RETRY_FIRST_MS);
  }

  async register(instance: Instance): Promise<void> {
    this.own = { key: `${this.prefix}${instance.service}/${instance.id}`, value: JSON.stringify(instance) };
    const previous = this.lease;
    this.lease = null;
    previous?.release();
    await this.publish();
  }

  async deregister(): Promise<void> {
    this.own = null;
    const lease = this.lease;
    this.lease = null;
    this.listener.lease(false, null);
    await lease?.revoke({ deadline: Date.now() + CALL_DEADLINE_MS });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.lease?.release();
    this.lease = null;
    // Not awaited: cancelling waits for etcd's answer, which an unreachable etcd never sends.
    void this.watcher?.cancel().catch(() => {});
    this.client.close();
  }

  /** Grant a lease and put our key under it; rejects (and lets the lease go) when etcd cannot. */
  private async publish(): Promise<void> {
    const own = this.own;
    if (own === null || this.closed) return;
    const lease = this.client.lease(this.ttlSeconds);
    lease.on('lost', (error: Error) => this.leaseLost(lease, error));
    try {
      await lease.put(own.key).value(own.value).exec();
    } catch (error) {
      lease.release();
      throw error;
    }
    if (this.own !== own || this.closed) return void lease.revoke().catch(() => {});
    this.lease = lease;
    this.listener.lease(true, null);
  }

  /** Our lease is gone (expired while cut off, or revoked): grant a new one until it works. */
  private leaseLost(lease: Lease, error: Error): void {
    if (lease !== this.lease) return; // one being granted (publish rejects) or one let go
    this.lease = null;
    this.listener.lease(false, error.message);
    const regrant = async (delay: number): Promise<void> => {
      try {
        await this.publish();
      } catch {
        this.later(() => void regrant(Math.min(delay * 2, RETRY_MAX_MS)), delay);
      }
    };
    void regrant(RETRY_FIRST_MS);
  }

  /** List the prefix, then watch it from the next revision; again from a list if the watch is cancelled. */
  private async follow(retryMs: number): Promise<void> {
    if (this.closed) return;
    let revision: string;
    try {
      revision = await this.list();
    } catch (error) {
      this.setReachable(false, (error as Error).message);
      this.later(() => void this.follow(Math.min(retryMs * 2, RETRY_MAX_MS)), retryMs);
      return;
    }
    if (this.closed) return;
    // watcher(), not create(): create() waits for the first connection, and reports nothing while
    // etcd is away; the watcher's own events say when it is cut off and when it is back.
    const watcher = this.client.watch().prefix(this.prefix).startRevision(String(BigInt(revision) + 1n)).watcher();
    this.watcher = watcher;
    let cutOff = false;
    watcher.on('put', (kv: IKeyValue) => {
      const instance = parseInstance(kv.value.toString());
      if (instance !== null) this.listener.put(instance);
    });
    watcher.on('delete', (kv: IKeyValue) => this.listener.remove(idOf(kv.key.toString())));
    watcher.on('disconnected', (error: Error) => {
      cutOff = true;
      this.setReachable(false, error.message);
    });
    watcher.on('connected', () => {
      if (!cutOff) return;
      cutOff = false;
      // Resumed where it stopped; a fresh list makes sure of the rest (an etcd restored from backup).
      this.list().catch((error: Error) => this.setReachable(false, error.message));
    });
    watcher.on('error', () => {
      if (this.watcher !== watcher) return;
      this.watcher = null;
      void watcher.cancel().catch(() => {});
      void this.follow(RETRY_FIRST_MS);
    });
  }

  /** Read every instance under the prefix; the revision it was read at. */
  private async list(): Promise<string> {
    const response = await this.client.getAll().prefix(this.prefix).exec();
    const instances: Instance[] = [];
    for (const kv of response.kvs) {
      const instance = parseInstance(kv.value.toString());
      if (instance !== null) instances.push(instance);
    }
    this.listener.snapshot(instances);
    this.setReachable(true, null);
    return response.header.revision;
  }

  private later(run: () => void, ms: number): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }

  private setReachable(reachable: boolean, reason: string | null): void {
    if (this.reachable === reachable || this.closed) return;
    this.reachable = reachable;
    this.listener.reachability(reachable, reason);
  }
}

/** The instance id is the key's last segment (ids never hold a `/`). */
function idOf(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

/** etcd3's options: credentials in an endpoint URL (`http://user:pass@host:2379`) become its auth. */
function clientOptions(endpoints: string[]): IOptions {
  let auth: IOptions['auth'];
  const hosts = endpoints.map((endpoint) => {
    const url = URL.parse(endpoint);
    if (url === null || url.username === '') return endpoint;
    auth = { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
    url.username = url.password = '';
    return url.origin;
  });
  return {
    hosts,
    ...(auth && { auth }),
    dialTimeout: CALL_DEADLINE_MS,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
    faultHandling: {
      // A member that failed three times in a row is skipped for a second (etcd3's default: five,
      // which with one endpoint keeps a restarted etcd unused for five seconds).
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1_000, breaker: new ConsecutiveBreaker(3) }),
      // A watch cut off reconnects within 2 s at most (etcd3's default backoff grows to 30 s). etcd3
      // calls next() on it as on a factory, which it is, though its type says a backoff.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2_000 }) as unknown as NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>,
    },
  };
}
