/**
 * Active health checking of the primary (contract: `inbound.healthCheck`): GET `path` every
 * `interval`; `unhealthyThreshold` failures in a row make it unhealthy, `healthyThreshold` successes
 * make it healthy again. It starts unhealthy: nothing is known until the first probe passes.
 */
import { EventEmitter } from 'node:events';
import { request } from 'undici';
import type { Logger } from 'pino';
import type { MeshletConfig } from '../config/schema.ts';

type HealthCheck = MeshletConfig['inbound']['healthCheck'];

export class PrimaryProbe extends EventEmitter<{ change: [healthy: boolean] }> {
  healthy = false;
  /** Why the last probe failed, for /readyz. */
  lastFailure: string | null = 'not probed yet';
  private failures = 0;
  private successes = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  private readonly primary: string;
  private readonly check: HealthCheck;
  private readonly logger: Logger;

  constructor(primary: string, check: HealthCheck, logger: Logger) {
    super();
    this.primary = primary;
    this.check = check;
    this.logger = logger;
  }

  start(): void {
    this.stopped = false;
    void this.probe();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }

  private async probe(): Promise<void> {
    const failure = await this.probeOnce();
    if (this.stopped) return;
    this.lastFailure = failure;
    if (failure === null) {
      this.failures = 0;
      this.successes++;
      if (!this.healthy && this.successes >= this.check.healthyThreshold) this.setHealthy(true);
    } else {
      this.successes = 0;
      this.failures++;
      if (this.healthy && this.failures >= this.check.unhealthyThreshold) this.setHealthy(false);
    }
    this.timer = setTimeout(() => void this.probe(), this.check.interval);
    this.timer.unref();
  }

  /** null when the primary answered 2xx in time, else why not. */
  private async probeOnce(): Promise<string | null> {
    try {
      const response = await request(new URL(this.check.path, this.primary), {
        method: 'GET',
        headers: { 'user-agent': 'meshlet-health-check' },
        signal: AbortSignal.timeout(this.check.timeout),
        reset: true,
      });
      await response.body.dump();
      return response.statusCode >= 200 && response.statusCode < 300 ? null : `health check answered ${response.statusCode}`;
    } catch (error) {
      const e = error as Error & { code?: string };
      return `health check failed: ${e.name === 'TimeoutError' ? `no answer within ${this.check.timeout}ms` : (e.code ?? e.message)}`;
    }
  }

  private setHealthy(healthy: boolean): void {
    this.healthy = healthy;
    this.logger.info({ primary: this.primary, healthy, reason: this.lastFailure ?? undefined }, healthy ? 'primary is healthy' : 'primary is unhealthy');
    this.emit('change', healthy);
  }
}
