/**
 * The metrics stage: outermost on every listener, so it sees every outcome, local replies included.
 */
import type { Exchange } from '../proxy/exchange.ts';
import type { Handler, Stage } from '../proxy/pipeline.ts';
import { methodLabel, type RouteMetrics } from './metrics.ts';

/** Status recorded when the client went away before any response head was sent (nginx's 499). */
export const CLIENT_CLOSED = 499;

/** The status to record: what the client got, or 499 when it left before getting anything. */
export function recordedStatus(ex: Exchange): number {
  return ex.status === 0 ? CLIENT_CLOSED : ex.status;
}

/** `unrouted` counts requests that never reached an upstream (unknown names, bad requests). */
export function recordMetrics(unrouted: RouteMetrics): Stage {
  return (next: Handler): Handler =>
    async function observe(ex: Exchange): Promise<void> {
      try {
        await next(ex);
      } finally {
        const route = ex.route ?? unrouted;
        if (ex.route !== null) route.inFlight.dec();
        if (ex.firstByteMs > 0) route.firstByte.observe(ex.firstByteMs / 1000);
        if (ex.localReply && ex.error !== null) route.localReply(ex.error.code);
        route.completed(methodLabel(ex.req.method), recordedStatus(ex), ex.elapsedMs() / 1000);
      }
    };
}
