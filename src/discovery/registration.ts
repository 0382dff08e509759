/**
 * The registration lifecycle of this sidecar's own instance:
 *   - registered only once the primary passes its health check, so nobody is sent to an agent that
 *     cannot answer;
 *   - withdrawn when the primary fails it, and registered again when it recovers;
 *   - on shutdown, deregistered first (the lease revoked), before the drain: callers stop choosing
 *     this instance while it still serves what they already sent.
 * One loop makes the registry match what is wanted, so that a flapping primary never has a
 * registration and a withdrawal racing each other; a failed attempt is retried with backoff.
 */
import type { Logger } from 'pino';
import type { Instance, Registry } from './registry.ts';

/** What registration reads of the primary's health check (health/primary-probe.ts). */
export type PrimaryHealth = {
  readonly healthy: boolean;
  on(event: 'change', listener: (healthy: boolean) => void): unknown;
};

export type RegistrationState = 'waiting-for-primary' | 'registering' | 'registered' | 'lease-lost' | 'failing' | 'withdrawn' | 'deregistered';

const WAITING = 'waiting for the primary to pass its health check';
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10_000;
/** Shutdown waits this long at most for the registry (an unreachable one cannot hold up the drain). */
const DEREGISTER_TIMEOUT_MS = 2_000;

export class Registration {
  state: RegistrationState = 'waiting-for-primary';
  /** Why it is not registered, when it is not. */
  reason: string | null = WAITING;
  /** The instance as last published (or to be published). */
  instance: Instance | null = null;
  /** When the current registration began (ms since the epoch), for /registry. */
  since: number | null = null;
  private published = false;
  private leaseHeld = true;
  private stopped = false;
  private running: Promise<void> | null = null;
  private again = false;
  private retryMs = RETRY_FIRST_MS;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly registry: Registry;
  private readonly primary: PrimaryHealth;
  private readonly describe: () => Promise<Instance>;
  private readonly logger: Logger;
  private readonly onChange: (registered: boolean) => void;

  /**
   * `describe` makes the instance to publish, each time it registers (the agent card may have changed
   * while the primary was down); `onChange` hears whether it is registered now.
   */
  constructor(options: { registry: Registry; primary: PrimaryHealth; describe: () => Promise<Instance>; logger: Logger; onChange: (registered: boolean) => void }) {
    this.registry = options.registry;
    this.primary = options.primary;
    this.describe = options.describe;
    this.logger = options.logger;
    this.onChange = options.onChange;
  }

  get registered(): boolean {
    return this.state === 'registered';
  }

  start(): void {
    this.primary.on('change', () => this.reconcile());
    this.reconcile();
  }

  /** The backend lost our lease (it re-grants it), or holds it again. */
  leaseChanged(held: boolean, reason: string | null): void {
    this.leaseHeld = held;
    if (!this.published) return;
    if (held) this.setState('registered', null);
    else this.setState('lease-lost', reason ?? 'the lease was lost');
  }

  /** Deregister for good (shutdown): bounded, so that an unreachable registry cannot delay the drain. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.reconcile();
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, DEREGISTER_TIMEOUT_MS).unref());
    await Promise.race([this.running ?? Promise.resolve(), timeout]);
  }

  /** Stop without deregistering (the sidecar is closing at once; the lease expires by itself). */
  close(): void {
    this.stopped = true;
    this.published = false;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
  }

  private reconcile(): void {
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => (this.running = null));
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      const wanted = this.primary.healthy && !this.stopped;
      if (wanted && !this.published) await this.register();
      else if (!wanted && this.published) await this.withdraw();
      else if (!wanted) this.setState(this.stopped ? 'deregistered' : 'waiting-for-primary', this.stopped ? 'shutting down' : WAITING);
    } while (this.again);
  }

  private async register(): Promise<void> {
    this.setState('registering', 'registering');
    try {
      this.instance = await this.describe();
      await this.registry.register(this.instance);
      this.published = true;
      this.retryMs = RETRY_FIRST_MS;
      this.since = Date.now();
      this.logger.info({ id: this.instance.id, address: this.instance.address, backend: this.registry.backend }, 'registered');
      if (this.leaseHeld) this.setState('registered', null);
      else this.setState('lease-lost', 'the lease was lost');
    } catch (error) {
      const reason = `cannot register: ${(error as Error).message}`;
      if (this.state !== 'failing') this.logger.warn({ backend: this.registry.backend, reason, retryMs: this.retryMs }, 'registration failed; retrying');
      this.setState('failing', reason);
      if (this.retryTimer !== null) clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.reconcile(), this.retryMs);
      this.retryTimer.unref();
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    }
  }

  private async withdraw(): Promise<void> {
    this.published = false;
    this.since = null;
    try {
      await this.registry.deregister();
      this.logger.info({ id: this.instance?.id, reason: this.notWantedReason() }, 'deregistered');
    } catch (error) {
      // The lease is no longer renewed either way: the registry drops the instance within its TTL.
      this.logger.warn({ reason: (error as Error).message }, 'deregistration failed; the lease will expire');
    }
    this.setState(this.stopped ? 'deregistered' : 'withdrawn', this.notWantedReason());
  }

  private notWantedReason(): string {
    return this.stopped ? 'shutting down' : 'the primary is failing its health check';
  }

  private setState(state: RegistrationState, reason: string | null): void {
    const was = this.registered;
    this.state = state;
    this.reason = reason;
    if (this.registered !== was) this.onChange(this.registered);
  }
}
