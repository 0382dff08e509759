/**
 * Active health checking of the primary (contract: `inbound.healthCheck`): GET `path` every
 * `interval`; `unhealthyThreshold` failures in a row make it unhealthy, `healthyThreshold` successes
 * make it healthy again. It starts unhealthy: nothing is known until the first probe passes.
 */
import { EventEmitter } from 'node:events';
import { request } from 'node:http';
import type { Logger } from 'pino';
import type { MeshletConfig } from '../config/schema.ts';

type HealthCheck = MeshletConfig['inbound']['healthCheck'];

const PROBE_HEADERS = { 'user-agent': 'meshlet-health-check', connection: 'close' };

export class PrimaryProbe extends EventEmitter<{ change: [healthy: boolean] }> {
  healthy = false;
  /** Why the last probe failed, for /readyz. */
  lastFailure: string | null = 'not probed yet';
  private failures = 0;
  /** Whether it has passed at least once since start. */
  private everHealthy = false;
  private successes = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  private readonly primary: string;
  private readonly check: HealthCheck;
  private readonly logger: Logger;
  private readonly url: URL;

  constructor(primary: string, check: HealthCheck, logger: Logger) {
    super();
    this.primary = primary;
    this.check = check;
    this.logger = logger;
    this.url = new URL(check.path, primary);
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
      // It starts unhealthy, so no transition says so: a primary that is down from the start is
      // named once, at its first failed probe, rather than only in /readyz.
      else if (!this.healthy && this.failures === 1 && !this.everHealthy) {
        this.logger.warn({ primary: this.primary, reason: failure }, 'primary is not healthy yet');
      }
    }
    this.timer = setTimeout(() => void this.probe(), this.check.interval);
    this.timer.unref();
  }

  /**
   * null when the primary answered 2xx in time, else why not. node:http rather than undici's
   * request API: the probe is one request every few seconds, and undici's full API costs ~11 MB.
   * A fresh connection each time, so a probe never rides a connection the primary has half closed.
   */
  private probeOnce(): Promise<string | null> {
    const { promise, resolve } = Promise.withResolvers<string | null>();
    const timeout = this.check.timeout;
    const req = request(this.url, {
      method: 'GET',
      headers: PROBE_HEADERS,
      agent: false,
      signal: AbortSignal.timeout(timeout),
    });
    req.on('response', (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      res.on('end', () => resolve(status >= 200 && status < 300 ? null : `health check answered ${status}`));
      res.on('error', () => resolve('health check failed: the answer was cut short'));
    });
    req.on('error', (e: Error & { code?: string }) => {
      resolve(`health check failed: ${e.name === 'AbortError' ? `no answer within ${timeout}ms` : (e.code ?? e.message)}`);
    });
    req.end();
    return promise;
  }

  private setHealthy(healthy: boolean): void {
    this.healthy = healthy;
    if (healthy) this.everHealthy = true;
    this.logger.info({ primary: this.primary, healthy, reason: this.lastFailure ?? undefined }, healthy ? 'primary is healthy' : 'primary is unhealthy');
    this.emit('change', healthy);
  }
}
