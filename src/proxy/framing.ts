/**
 * Request framing checks that Node's strict parser leaves to us (RFC 9112 §3.2, §6.1). The parser
 * itself rejects CL+TE, duplicate Content-Length, bad chunking and obs-fold before a request exists.
 */
import { MeshletError } from './errors.ts';
import type { Exchange } from './exchange.ts';
import type { Handler, Stage } from './pipeline.ts';

const CHUNKED = /^chunked$/i;

export const checkFraming: Stage = (next: Handler): Handler =>
  function checkRequestFraming(ex: Exchange): Promise<void> {
    // The parser already refused the rest of this connection and the listener answered 400: the
    // head arrived, but the body bytes after it are malformed. Nothing may be forwarded.
    if (ex.req.socket.destroyed || !ex.req.socket.writable) {
      ex.error = new MeshletError('bad_request', 'malformed request body framing');
      ex.localReply = true;
      ex.status = ex.error.status;
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
