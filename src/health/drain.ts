/**
 * Graceful drain: once begun, readiness fails and new requests are refused with 503 `draining`,
 * while requests already in flight run to completion.
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Handler, Stage } from '../core/stage.ts';

export class Drain {
  draining = false;

  begin(): void {
    this.draining = true;
  }

  readonly stage: Stage = (next: Handler): Handler => {
    const drain = this;
    return function refuseWhileDraining(ex: Exchange): Promise<void> {
      if (drain.draining) return Promise.reject(new MeshletError('draining', 'meshlet is shutting down'));
      return next(ex);
    };
  };
}
