/**
 * Graceful drain, in two phases (SIGTERM):
 * 1. `announce()`: readiness fails at once, so load balancers and the registry take this sidecar out,
 *    but requests are still served for `service.drainDelay`, each answered with `Connection: close`,
 *    because a load balancer keeps sending for a few seconds after readiness fails;
 * 2. `begin()`: the listeners stop accepting and new requests on open connections are refused with 503
 *    `draining`, while requests already in flight run to completion (up to `service.drainTimeout`).
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Handler, Stage } from '../core/stage.ts';

export class Drain {
  /** Readiness fails from here on: shutdown has been asked for. */
  announced = false;
  /** New requests are refused: the listeners have stopped accepting. */
  draining = false;

  announce(): void {
    this.announced = true;
  }

  begin(): void {
    this.announced = true;
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
