/**
 * The observe stage: outermost on every listener, so it sees every outcome, local replies included,
 * and records each finished exchange in the metrics and the access log.
 */
import type { Exchange } from '../core/exchange.ts';
import type { Handler, Stage } from '../core/stage.ts';
import type { AccessLog } from './access-log.ts';
import { methodLabel, type Direction, type RouteMetrics } from './metrics.ts';
import { recordedStatus } from './status.ts';

/** `unrouted` counts requests that never reached an upstream (unknown names, bad requests). */
export function observe(direction: Direction, unrouted: RouteMetrics, accessLog: AccessLog | null): Stage {
  const metrics = unrouted.metrics;
  return (next: Handler): Handler =>
    async function observeExchange(ex: Exchange): Promise<void> {
      try {
        await next(ex);
      } finally {
        const route = ex.route ?? unrouted;
        // Read per request: tracing may install its source after the listeners are built.
        const traceIdOf = metrics.traceIdOf;
        const traceId = traceIdOf === null ? '' : traceIdOf(ex);
        if (ex.route !== null) route.inFlight.dec();
        if (ex.firstByteMs > 0) route.firstByteAfter(ex.firstByteMs / 1000, traceId);
        if (ex.localReply && ex.error !== null) route.localReply(ex.error.code);
        route.completed(methodLabel(ex.req.method), recordedStatus(ex), ex.elapsedMs() / 1000, traceId);
        accessLog?.write(ex, direction, traceId);
      }
    };
}
