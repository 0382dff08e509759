/**
 * Load shedding: at most `max` requests in flight on a listener; the rest get 503 `overloaded` at
 * once instead of queueing without bound.
 */
import { MeshletError } from '../proxy/errors.ts';
import type { Exchange } from '../proxy/exchange.ts';
import type { Handler, Stage } from '../proxy/pipeline.ts';

export class ConcurrencyLimit {
  inFlight = 0;
  readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  readonly stage: Stage = (next: Handler): Handler => {
    const limit = this;
    return async function limitConcurrency(ex: Exchange): Promise<void> {
      if (limit.inFlight >= limit.max) {
        throw new MeshletError('overloaded', `more than ${limit.max} requests in flight`, { retryAfter: 1 });
      }
      limit.inFlight++;
      try {
        await next(ex);
      } finally {
        limit.inFlight--;
      }
    };
  };
}
