/**
 * The one place where errors become responses. Every stage and layer rejects with a MeshletError;
 * the listener hands what rejected its stages here (listener.ts), and the client is answered once,
 * the right way.
 *
 * Anything else reaching here is a bug in meshlet, not the upstream's doing: it is answered 500
 * `internal` and logged with its stack, never blamed on the upstream as a reset (which would count
 * against a healthy upstream's breaker and get it ejected).
 */
import type { Logger } from 'pino';
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import { sendLocalReply, sendRawLocalReply } from './reply.ts';

export function rescue(ex: Exchange, error: unknown, logger: Logger): void {
  if (error instanceof MeshletError) {
    answer(ex, error);
    return;
  }
  if (ex.clientGone) return; // whatever failed, nobody is waiting for the answer
  logger.error({ err: error, requestId: ex.requestId, upstream: ex.upstream }, 'bug: unexpected error on the request path');
  answer(ex, new MeshletError('internal', 'meshlet failed to handle this request', { cause: error }));
}

/** Reply with `failure` when nothing has been sent yet; otherwise cut the connection. */
export function answer(ex: Exchange, failure: MeshletError): void {
  ex.error = failure;
  const res = ex.res;
  if (res === null) {
    if (ex.clientGone || ex.socket.destroyed) return;
    ex.localReply = true;
    ex.status = failure.status;
    ex.bytesSent = sendRawLocalReply(ex.socket, failure, ex.upstream, ex.requestId);
    return;
  }
  if (ex.clientGone || res.destroyed) return;
  if (res.headersSent) {
    res.destroy(failure);
    return;
  }
  ex.localReply = true;
  ex.status = failure.status;
  // After a framing error nothing more on this connection can be trusted; while draining, the
  // client should reconnect elsewhere; a body still arriving would otherwise be read to its end (a
  // trickling upload could hold the connection for as long as it likes).
  const close = failure.code === 'bad_request' || failure.code === 'draining' || (ex.hasBody && !ex.req.complete);
  ex.bytesSent = sendLocalReply(res, failure, ex.upstream, ex.requestId, close);
}
