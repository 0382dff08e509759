/**
 * Writing the replies meshlet makes itself (contract: "Replies that meshlet makes itself"):
 * a JSON body, `content-type: application/json` and `x-meshlet-error: <code>`.
 */
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { MeshletError } from '../core/errors.ts';

export function replyBody(error: MeshletError, upstream: string, requestId: string): string {
  return JSON.stringify({ error: { code: error.code, message: error.message, upstream, requestId } });
}

/** Answer on a response whose head has not been sent yet. Returns the body's size in bytes. */
export function sendLocalReply(
  res: ServerResponse,
  error: MeshletError,
  upstream: string,
  requestId: string,
  closeConnection: boolean,
): number {
  const body = replyBody(error, upstream, requestId);
  const length = Buffer.byteLength(body);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': length,
    'x-meshlet-error': error.code,
    'x-request-id': requestId,
  };
  if (error.retryAfter !== undefined) headers['retry-after'] = error.retryAfter;
  if (closeConnection) headers.connection = 'close';
  res.writeHead(error.status, headers);
  res.end(body);
  return length;
}

/**
 * Answer on a bare socket: for requests Node's parser rejected (no ServerResponse exists), upgrades
 * and CONNECT. Always closes the connection: after a framing error nothing more can be trusted.
 * Returns the body's size in bytes (0 when the socket could no longer be written).
 */
export function sendRawLocalReply(socket: Duplex, error: MeshletError, upstream: string, requestId: string): number {
  // Node's server stops watching a socket it hands over (CONNECT, upgrade): a reset that arrives
  // while this reply is written must be this socket's event, not the process's.
  if (socket.listenerCount('error') === 0) socket.on('error', destroyThis);
  if (!socket.writable) {
    socket.destroy();
    return 0;
  }
  const body = replyBody(error, upstream, requestId);
  const length = Buffer.byteLength(body);
  const retryAfter = error.retryAfter === undefined ? '' : `retry-after: ${error.retryAfter}\r\n`;
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n` +
      'content-type: application/json\r\n' +
      `content-length: ${length}\r\n` +
      `x-meshlet-error: ${error.code}\r\n` +
      `x-request-id: ${requestId}\r\n${retryAfter}` +
      'connection: close\r\n\r\n' +
      body,
  );
  // Keep reading (and dropping) what the client still sends, so that its FIN or reset is noticed and
  // the descriptor freed; one that never closes its side is cut after a linger.
  socket.resume();
  if (socket instanceof Socket) socket.setTimeout(RAW_REPLY_LINGER_MS, destroyThis);
  return length;
}

/** After a raw reply, how long a client may keep its side of the connection open. */
const RAW_REPLY_LINGER_MS = 5_000;

/** An 'error' or 'timeout' listener shared by every socket: destroy the socket it fired on. */
export function destroyThis(this: Duplex): void {
  this.destroy();
}
