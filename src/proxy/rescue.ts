/**
 * The one place where errors become responses. Everything below this stage throws MeshletErrors
 * (or lets transport errors through); this stage answers the client once, the right way.
 */
import type { Logger } from 'pino';
import { MeshletError, fromTransportError } from './errors.ts';
import type { Exchange } from './exchange.ts';
import type { Handler, Stage } from './pipeline.ts';
import { sendLocalReply } from './reply.ts';

export function rescue(logger: Logger): Stage {
  return (next: Handler): Handler =>
    async function rescueErrors(ex: Exchange): Promise<void> {
      try {
        await next(ex);
      } catch (error) {
        if (!(error instanceof MeshletError)) logger.error({ err: error, requestId: ex.requestId }, 'unexpected error on the request path');
        answer(ex, fromTransportError(error, ex.upstream));
      }
    };
}

/** Reply with `failure` when nothing has been sent yet; otherwise cut the connection. */
export function answer(ex: Exchange, failure: MeshletError): void {
  ex.error = failure;
  if (ex.clientGone || ex.res.destroyed) return;
  if (ex.res.headersSent) {
    ex.res.destroy(failure);
    return;
  }
  ex.localReply = true;
  ex.status = failure.status;
  // After a framing error nothing more on this connection can be trusted; while draining, the
  // client should reconnect elsewhere.
  const close = failure.code === 'bad_request' || failure.code === 'draining';
  sendLocalReply(ex.res, failure, ex.upstream, ex.requestId, close);
}
