/**
 * WebSocket (HTTP/1.1 Upgrade) tunnelling: the one place that talks to http-proxy-3.
 *
 * Hardened beyond the library: the two sockets are linked, so an error or close on either side
 * destroys the other at once, and no socket outlives its peer.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { createProxyServer } from 'http-proxy-3';
import type { Logger } from 'pino';
import { MeshletError, fromTransportError } from './errors.ts';
import { sendRawLocalReply } from './reply.ts';
import type { Upstream } from './upstream.ts';
import type { Drain } from '../health/drain.ts';

/** Where an upgrade request goes: an upstream, or the error to answer with. */
export type UpgradeRoute = (req: IncomingMessage) => Upstream | MeshletError;

const FORWARDED = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port'];

export function createUpgradeHandler(options: {
  route: UpgradeRoute;
  drain: Drain;
  trustForwarded: boolean;
  logger: Logger;
}): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const proxy = createProxyServer({ ws: true, xfwd: true, xfwdWsProtoAsHttp: true });
  proxy.on('proxyReqWs', (proxyReq, _req, clientSocket) => {
    proxyReq.on('upgrade', (_res: IncomingMessage, upstreamSocket: Socket) => link(clientSocket as Socket, upstreamSocket));
  });
  proxy.on('error', (error, req, socket) => {
    const upstream = (req as IncomingMessage & { meshletUpstream?: string }).meshletUpstream ?? '-';
    options.logger.warn({ err: error, upstream }, 'websocket tunnel failed');
    const failure = fromTransportError(error, upstream);
    if ('writable' in socket && socket.writable && !(socket as Socket & { meshletOpen?: boolean }).meshletOpen) {
      sendRawLocalReply(socket as Socket, failure, upstream, req.headers['x-request-id'] as string);
    } else {
      (socket as Socket).destroy();
    }
  });

  return function tunnel(req, socket, head) {
    socket.on('error', destroySelf);
    if (!req.headers['x-request-id']) req.headers['x-request-id'] = randomUUID();
    const requestId = req.headers['x-request-id'] as string;
    if (options.drain.draining) {
      sendRawLocalReply(socket, new MeshletError('draining', 'meshlet is shutting down'), '-', requestId);
      return;
    }
    const target = options.route(req);
    if (target instanceof MeshletError) {
      sendRawLocalReply(socket, target, '-', requestId);
      return;
    }
    const endpoint = target.pickEndpoint();
    if (endpoint === undefined) {
      sendRawLocalReply(socket, new MeshletError('no_healthy_endpoints', `no endpoint for ${target.name}`), target.name, requestId);
      return;
    }
    if (!options.trustForwarded) for (const name of FORWARDED) delete req.headers[name];
    (req as IncomingMessage & { meshletUpstream?: string }).meshletUpstream = target.name;
    proxy.ws(req, socket, head, { target: endpoint.url, changeOrigin: true });
  };
}

/**
 * Tie two sockets' lives together: when one closes, the other is flushed and closed (so a final
 * WebSocket close frame still goes out); when one fails, both are destroyed at once.
 */
function link(client: Socket, upstream: Socket): void {
  (client as Socket & { meshletOpen?: boolean }).meshletOpen = true;
  const destroyBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.once('close', () => upstream.destroySoon());
  upstream.once('close', () => client.destroySoon());
  client.on('error', destroyBoth);
  upstream.on('error', destroyBoth);
}

function destroySelf(this: Duplex): void {
  this.destroy();
}
