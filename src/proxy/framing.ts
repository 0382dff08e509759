/**
 * Request framing checks that Node's strict parser leaves to us (RFC 9112 §3.2, §6.1), and the answer
 * to requests the parser refused. The parser itself rejects CL+TE, duplicate Content-Length, bad
 * chunking and obs-fold before a request exists. Upgrades and CONNECT pass the same Host rules as
 * every other request; whether CONNECT is served is the route's decision.
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Handler, Stage } from '../core/stage.ts';

const CHUNKED = /^chunked$/i;

export const checkFraming: Stage = (next: Handler): Handler =>
  function checkRequestFraming(ex: Exchange): Promise<void> {
    if (ex.refused !== null) {
      if (ex.socket.writable) return Promise.reject(ex.refused);
      // The parser refused the rest of this connection once the head had arrived (the body bytes after
      // it are malformed) and the listener has answered already. Nothing may be forwarded.
      ex.error = ex.refused;
      ex.localReply = true;
      ex.status = ex.refused.status;
      return Promise.resolve();
    }
    if (ex.socket.destroyed || !ex.socket.writable) {
      // The client is gone before anything was forwarded.
      ex.clientGone = true;
      return Promise.resolve();
    }
    const problem = framingProblem(ex);
    if (problem !== null) return Promise.reject(new MeshletError('bad_request', problem));
    return next(ex);
  };

function framingProblem(ex: Exchange): string | null {
  const head = ex.head;
  if (head.hostCount > 1) return 'more than one Host header';
  if (head.hostCount === 0 && ex.req.httpVersionMinor === 1) return 'missing Host header';
  if (head.transferEncoding !== undefined) {
    if (ex.req.httpVersionMinor === 0) return 'Transfer-Encoding in an HTTP/1.0 request';
    if (!CHUNKED.test(head.transferEncoding)) return 'Transfer-Encoding other than chunked';
  }
  return null;
}
