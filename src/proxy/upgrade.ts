/**
 * WebSocket (HTTP/1.1 Upgrade) tunnelling: the one place that talks to http-proxy-3.
 *
 * Hardened beyond the library: each open tunnel is handed to the listener's `Tunnels`, which ties the
 * two sockets' lives together, bounds how many are open and ends them on drain (tunnels.ts). Each
 * upgrade is counted in `meshlet_requests_total` (code 101 once the tunnel is open, or the local
 * reply's status).
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
import type { RouteMetrics } from '../telemetry/metrics.ts';
import type { Tunnels } from './tunnels.ts';

/** Where an upgrade request goes: an upstream, or the error to answer with. */
export type UpgradeRoute = (req: IncomingMessage) => Upstream | MeshletError;

const FORWARDED = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port'];
const SWITCHING_PROTOCOLS = 101;

type Tunnel = { upstream: Upstream; requestId: string; startedAt: number };

export function createUpgradeHandler(options: {
  route: UpgradeRoute;
  drain: Drain;
  trustForwarded: boolean;
  logger: Logger;
  unrouted: RouteMetrics;
  tunnels: Tunnels;
}): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { logger, unrouted, tunnels: openTunnels } = options;
  const tunnels = new WeakMap<IncomingMessage, Tunnel>();
  const open = new WeakSet<Duplex>();
  const proxy = createProxyServer({ ws: true, xfwd: true, xfwdWsProtoAsHttp: true });

  proxy.on('proxyReqWs', (proxyReq, req, clientSocket) => {
    // Registered after http-proxy-3's own 'upgrade' listener (it registers it once this event
    // returns; the upstream cannot answer before the next tick): that one unshifts the upstream's
    // first bytes and pipes the sockets, and a 'data' listener added before the pipe would swallow them.
    process.nextTick(() => proxyReq.on('upgrade', (_res: IncomingMessage, upstreamSocket: Socket) => {
      open.add(clientSocket);
      const tunnel = tunnels.get(req);
      if (tunnel === undefined) {
        upstreamSocket.destroy();
        clientSocket.destroy();
        return;
      }
      openTunnels.add(clientSocket as Socket, upstreamSocket, tunnel.upstream.route.tunnelsOpen, isWebSocket(req));
      tunnel.upstream.route.completed('GET', SWITCHING_PROTOCOLS, (performance.now() - tunnel.startedAt) / 1000);
    }));
  });
  proxy.on('error', (error, req, socket) => {
    const tunnel = tunnels.get(req);
    const name = tunnel?.upstream.name ?? '-';
    logger.warn({ err: error, upstream: name, requestId: tunnel?.requestId }, 'websocket tunnel failed');
    if (open.has(socket as Duplex)) {
      (socket as Duplex).destroy();
      return;
    }
    reject(tunnel?.upstream.route ?? unrouted, socket as Duplex, fromTransportError(error, name), name, tunnel?.requestId ?? '-');
  });

  return function tunnel(req, socket, head) {
    socket.on('error', destroySelf);
    if (!req.headers['x-request-id']) req.headers['x-request-id'] = randomUUID();
    const requestId = String(req.headers['x-request-id']);
    if (options.drain.draining) {
      reject(unrouted, socket, new MeshletError('draining', 'meshlet is shutting down'), '-', requestId);
      return;
    }
    const target = options.route(req);
    if (target instanceof MeshletError) {
      reject(unrouted, socket, target, '-', requestId);
      return;
    }
    if (openTunnels.full) {
      reject(target.route, socket, new MeshletError('overloaded', 'too many open tunnels', { retryAfter: 1 }), target.name, requestId);
      return;
    }
    const endpoint = target.pickEndpoint();
    if (endpoint === undefined) {
      reject(target.route, socket, new MeshletError('no_healthy_endpoints', `no endpoint for ${target.name}`), target.name, requestId);
      return;
    }
    if (!options.trustForwarded) for (const name of FORWARDED) delete req.headers[name];
    tunnels.set(req, { upstream: target, requestId, startedAt: performance.now() });
    proxy.ws(req, socket, head, { target: endpoint.url, changeOrigin: true });
  };
}

function reject(route: RouteMetrics, socket: Duplex, failure: MeshletError, upstream: string, requestId: string): void {
  route.localReply(failure.code);
  route.completed('GET', failure.status, 0);
  sendRawLocalReply(socket, failure, upstream, requestId);
}

function isWebSocket(req: IncomingMessage): boolean {
  return req.headers.upgrade?.toLowerCase() === 'websocket';
}

function destroySelf(this: Duplex): void {
  this.destroy();
}
