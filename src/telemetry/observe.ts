/**
 * Observing: every finished exchange, local replies included, recorded once: its SERVER span ended,
 * the metrics and the access log. The listener runs it as its outermost step, after rescue, around the
 * stages (listener.ts): one async frame per request for the three, where a stage of its own each cost
 * a frame, a promise and a microtask.
 */
import type { Exchange } from '../core/exchange.ts';
import type { AccessLog } from './access-log.ts';
import { endServerSpan } from './tracing/server-span.ts';
import { methodLabel, type Direction, type RouteMetrics } from './metrics.ts';
import { recordedStatus } from './status.ts';

/** Records a finished exchange. */
export type Observe = (ex: Exchange) => void;

/** `unrouted` counts requests that never reached an upstream (unknown names, bad requests). */
export function observe(direction: Direction, unrouted: RouteMetrics, accessLog: AccessLog | null): Observe {
  const metrics = unrouted.metrics;
  return function observeExchange(ex: Exchange): void {
    if (ex.trace !== null) endServerSpan(ex, ex.trace);
    const route = ex.route ?? unrouted;
    // Read per request: tracing may install its source after the listeners are built.
    const traceIdOf = metrics.traceIdOf;
    const traceId = traceIdOf === null ? '' : traceIdOf(ex);
    if (ex.route !== null) route.inFlight.dec();
    if (ex.firstByteMs > 0) route.firstByteAfter(ex.firstByteMs / 1000, traceId);
    if (ex.localReply && ex.error !== null) route.localReply(ex.error.code);
    route.completed(methodLabel(ex.req.method), recordedStatus(ex), ex.elapsedMs() / 1000, traceId);
    accessLog?.write(ex, direction, traceId);
  };
}
