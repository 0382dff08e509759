/**
 * Passive outlier detection (Envoy's `consecutive_5xx`, Linkerd's failure accrual): an endpoint that
 * fails `consecutiveFailures` attempts in a row is ejected, taken out of load balancing, and comes
 * back on its own when its ejection time has passed.
 *
 * - Only `failure` outcomes count (no connection, reset, timeout, 5xx); a success resets the count;
 *   `ignored` outcomes (client gone, meshlet refused) never count either way.
 * - The ejection time is `baseEjectionTime` × how many times in a row the endpoint was ejected, up to
 *   `maxEjectionTime`: an endpoint that keeps failing stays out longer. The multiplier falls by one
 *   for each `baseEjectionTime` the endpoint then spends back in service (Envoy decrements it while
 *   the host stays healthy).
 * - At most `maxEjectedPercent` of the endpoints are ejected at once, but at least one may always be
 *   (with two endpoints or more); the last endpoint in service is never ejected, whatever the setting:
 *   an upstream that fails everywhere is the circuit breaker's business.
 *
 * Each outcome is O(1) bookkeeping on its endpoint; only an ejection or a return does more.
 */
import type { Attempt } from '../core/attempt.ts';
import type { Clock, ClockTimer } from '../core/clock.ts';
import type { Logger } from 'pino';
import type { Policy } from '../config/schema.ts';
import type { Endpoint } from './endpoint.ts';

export type OutlierSettings = Policy['outlierDetection'];

/** What an endpoint's passive health is; kept on the endpoint, so it lives exactly as long as it does. */
export class EndpointHealth {
  /** Failures in a row since the last success (or ejection). */
  consecutiveFailures = 0;
  ejected = false;
  /** Runtime-clock time (ms) the ejection ends; meaningful while `ejected`. */
  ejectedUntil = 0;
  /** Ejections since the endpoint joined, for operators. */
  timesEjected = 0;
  /** The ejection-time multiplier: grows with each ejection, falls while the endpoint does well. */
  multiplier = 0;
  /** Runtime-clock time of the last return to service; 0 before any. */
  returnedAt = 0;
  /** The timer that ends the ejection. */
  timer: ClockTimer | null = null;
}

/** The endpoint set the detector watches, and who to tell when ejections change it. */
export interface OutlierHost {
  readonly name: string;
  readonly endpoints: readonly Endpoint[];
  /** An endpoint was ejected or returned: the set in service changed. */
  ejectionsChanged(): void;
}

export class OutlierDetector {
  private readonly settings: OutlierSettings;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly host: OutlierHost;
  /** Endpoints of the current set that are ejected now. */
  private ejectedCount = 0;
  /** The upstream was closed or handed its endpoints to a successor (reload): nothing more is ejected. */
  private closed = false;

  constructor(settings: OutlierSettings, clock: Clock, logger: Logger, host: OutlierHost) {
    this.settings = settings;
    this.clock = clock;
    this.logger = logger;
    this.host = host;
  }

  /** Whether detection is on (`consecutiveFailures` > 0). */
  get enabled(): boolean {
    return this.settings.consecutiveFailures > 0;
  }

  /** An attempt's outcome listener. */
  readonly observe = (attempt: Attempt): void => {
    const endpoint = attempt.endpoint;
    if (endpoint === null || this.closed) return;
    const health = endpoint.health;
    if (attempt.outcome === 'success') {
      health.consecutiveFailures = 0;
    } else if (attempt.outcome === 'failure') {
      health.consecutiveFailures++;
      if (health.consecutiveFailures >= this.settings.consecutiveFailures && !health.ejected) this.tryEject(endpoint, attempt.label);
    }
  };

  /** The endpoint left the upstream: its ejection, if any, no longer counts. */
  forget(endpoint: Endpoint): void {
    const health = endpoint.health;
    if (!health.ejected) return;
    this.cancelTimer(health);
    health.ejected = false;
    this.ejectedCount--;
  }

  /** Put an ejected endpoint back in service now (its time passed, or no endpoint is left without it). */
  restore(endpoint: Endpoint, reason: string): void {
    const health = endpoint.health;
    if (!health.ejected) return;
    this.cancelTimer(health);
    health.ejected = false;
    health.returnedAt = this.clock.now();
    this.ejectedCount--;
    this.logger.info({ upstream: this.host.name, endpoint: endpoint.url, timesEjected: health.timesEjected, reason }, 'endpoint returned to load balancing');
    this.host.ejectionsChanged();
  }

  /** Stop every timer (the upstream closes). */
  close(): void {
    this.closed = true;
    for (const endpoint of this.host.endpoints) this.cancelTimer(endpoint.health);
  }

  private tryEject(endpoint: Endpoint, label: string): void {
    const total = this.host.endpoints.length;
    // Never the last endpoint in service; at most maxEjectedPercent, but always one with two or more.
    const allowed = Math.max(1, Math.floor((total * this.settings.maxEjectedPercent) / 100));
    if (this.ejectedCount + 1 >= total || this.ejectedCount >= allowed) return;
    if (!this.host.endpoints.includes(endpoint)) return; // an attempt that outlived its endpoint's membership
    const health = endpoint.health;
    const now = this.clock.now();
    const { baseEjectionTime, maxEjectionTime } = this.settings;
    if (health.returnedAt > 0 && baseEjectionTime > 0) {
      const forgiven = Math.floor((now - health.returnedAt) / baseEjectionTime);
      health.multiplier = Math.max(0, health.multiplier - forgiven);
    }
    health.multiplier++;
    const ejectionMs = Math.min(baseEjectionTime * health.multiplier, Math.max(maxEjectionTime, baseEjectionTime));
    const consecutiveFailures = health.consecutiveFailures;
    health.ejected = true;
    health.ejectedUntil = now + ejectionMs;
    health.timesEjected++;
    health.consecutiveFailures = 0;
    this.ejectedCount++;
    health.timer = this.clock.setTimeout(this.ejectionOver, ejectionMs, endpoint);
    health.timer.unref?.();
    this.logger.warn(
      { upstream: this.host.name, endpoint: endpoint.url, consecutiveFailures, lastFailure: label, ejectionMs, timesEjected: health.timesEjected },
      'endpoint ejected from load balancing',
    );
    this.host.ejectionsChanged();
  }

  private readonly ejectionOver = (endpoint: Endpoint): void => {
    endpoint.health.timer = null;
    this.restore(endpoint, 'ejection time passed');
  };

  private cancelTimer(health: EndpointHealth): void {
    if (health.timer === null) return;
    this.clock.clearTimeout(health.timer);
    health.timer = null;
  }
}
