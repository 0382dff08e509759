/**
 * Writing the replies meshlet makes itself (contract: "Replies that meshlet makes itself"):
 * a JSON body, `content-type: application/json` and `x-meshlet-error: <code>`.
 */
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { MeshletError } from './errors.ts';

export function replyBody(error: MeshletError, upstream: string, requestId: string): string {
  return JSON.stringify({ error: { code: error.code, message: error.message, upstream, requestId } });
}

/** Answer on a response whose head has not been sent yet. */
export function sendLocalReply(
  res: ServerResponse,
  error: MeshletError,
  upstream: string,
  requestId: string,
  closeConnection: boolean,
): void {
  const body = replyBody(error, upstream, requestId);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-meshlet-error': error.code,
    'x-request-id': requestId,
  };
  if (error.retryAfter !== undefined) headers['retry-after'] = error.retryAfter;
  if (closeConnection) headers.connection = 'close';
  res.writeHead(error.status, headers);
  res.end(body);
}

/**
 * Answer on a bare socket: for requests Node's parser rejected (no ServerResponse exists) and for
 * upgrade requests. Always closes the connection: after a framing error nothing more can be trusted.
 */
export function sendRawLocalReply(socket: Duplex, error: MeshletError, upstream: string, requestId: string): void {
  // Node's server stops watching a socket it hands over (CONNECT, upgrade): a reset that arrives
  // while this reply is written must be this socket's event, not the process's.
  if (socket.listenerCount('error') === 0) socket.on('error', destroyOnError);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = replyBody(error, upstream, requestId);
  const retryAfter = error.retryAfter === undefined ? '' : `retry-after: ${error.retryAfter}\r\n`;
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n` +
      'content-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `x-meshlet-error: ${error.code}\r\n` +
      `x-request-id: ${requestId}\r\n${retryAfter}` +
      'connection: close\r\n\r\n' +
      body,
  );
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}
