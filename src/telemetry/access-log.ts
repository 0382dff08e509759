/**
 * One JSON line per request (pino). The path is logged without its query string, which often
 * carries tokens.
 */
import type { Logger } from 'pino';
import type { Exchange } from '../proxy/exchange.ts';
import type { Handler, Stage } from '../proxy/pipeline.ts';
import type { Direction } from './metrics.ts';
import { recordedStatus } from './observe.ts';

export function accessLog(logger: Logger, direction: Direction): Stage {
  return (next: Handler): Handler =>
    async function logRequest(ex: Exchange): Promise<void> {
      try {
        await next(ex);
      } finally {
        logger.info(
          {
            type: 'access',
            direction,
            upstream: ex.upstream,
            method: ex.req.method,
            path: pathOnly(ex.path),
            status: recordedStatus(ex),
            durationMs: Math.round(ex.elapsedMs() * 100) / 100,
            firstByteMs: ex.firstByteMs > 0 ? Math.round(ex.firstByteMs * 100) / 100 : undefined,
            bytesSent: ex.bytesSent,
            requestId: ex.requestId,
            endpoint: ex.endpoint?.url,
            error: ex.error?.code,
            clientGone: ex.clientGone || undefined,
          },
          'request',
        );
      }
    };
}

function pathOnly(path: string): string {
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}
