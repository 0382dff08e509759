/**
 * The inbound rate limit (`inbound.rateLimit`): a token bucket for the whole listener, like Envoy's
 * local rate limit. `requestsPerSecond` tokens are added per second, up to `burst` (at least one
 * second's worth when 0); each request takes one, and a request that finds none gets 429
 * `rate_limited` with `Retry-After` (the seconds until a token is back), counted in
 * `meshlet_rate_limited_total`. Refilled lazily from the runtime clock: no timer.
 */
import type { Counter } from 'prom-client';
import type { Clock } from '../core/clock.ts';
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Handler, Stage } from '../core/stage.ts';

export type RateLimitSettings = { requestsPerSecond: number; burst: number };

export class TokenBucket {
  private readonly perMs: number;
  private readonly capacity: number;
  private readonly clock: Clock;
  private tokens: number;
  private updatedAt: number;

  constructor(settings: RateLimitSettings, clock: Clock) {
    this.perMs = settings.requestsPerSecond / 1000;
    this.capacity = Math.max(1, settings.burst > 0 ? settings.burst : settings.requestsPerSecond);
    this.clock = clock;
    this.tokens = this.capacity;
    this.updatedAt = clock.now();
  }

  /** Take a token: 0 when one was there, else the ms until one will be. */
  take(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.updatedAt) * this.perMs);
    this.updatedAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return (1 - this.tokens) / this.perMs;
  }
}

/** The rate-limit stage; off (costs nothing) when `requestsPerSecond` is 0. */
export function rateLimit(settings: RateLimitSettings, clock: Clock, limited: Counter<'direction'>, direction: string): Stage {
  return (next: Handler): Handler => {
    if (settings.requestsPerSecond <= 0) return next;
    const bucket = new TokenBucket(settings, clock);
    const counted = limited.labels(direction);
    return function limitRate(ex: Exchange): Promise<void> {
      const waitMs = bucket.take();
      if (waitMs === 0) return next(ex);
      counted.inc();
      const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
      return Promise.reject(new MeshletError('rate_limited', `over ${settings.requestsPerSecond} requests per second`, { retryAfter }));
    };
  };
}
