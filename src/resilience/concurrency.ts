/**
 * Load shedding: at most `max` requests in flight on a listener; the rest get 503 `overloaded` at
 * once instead of queueing without bound.
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Handler, Stage } from '../core/stage.ts';

export class ConcurrencyLimit {
  inFlight = 0;
  readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  readonly stage: Stage = (next: Handler): Handler => {
    const limit = this;
    // Released in a `then` rather than an async function's `finally`: one promise per request instead
    // of an async frame, and the handlers are made once, here.
    const released = (): void => {
      limit.inFlight--;
    };
    const releasedAfterFailure = (error: unknown): never => {
      limit.inFlight--;
      throw error;
    };
    return function limitConcurrency(ex: Exchange): Promise<void> {
      if (limit.inFlight >= limit.max) {
        return Promise.reject(new MeshletError('overloaded', `more than ${limit.max} requests in flight`, { retryAfter: 1 }));
      }
      limit.inFlight++;
      let pending: Promise<void>;
      try {
        pending = next(ex);
      } catch (error) {
        limit.inFlight--;
        return Promise.reject(error);
      }
      return pending.then(released, releasedAfterFailure);
    };
  };
}
