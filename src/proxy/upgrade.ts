/**
 * WebSocket (HTTP/1.1 Upgrade) tunnelling, the last step of an upgrade exchange: the one place that
 * talks to http-proxy-3.
 *
 * An upgrade goes through the same stages as any request (observe, rescue, framing, drain, limits,
 * route); this step opens the tunnel, and resolves once the upstream has answered: 101 and the tunnel
 * is handed to the listener's `Tunnels` (which ties the two sockets' lives together, bounds how many
 * are open and ends them on drain), or another status, which http-proxy-3 relays to the client.
 * Failures before an answer reject, and rescue answers on the raw socket.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { createProxyServer } from 'http-proxy-3';
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Handler } from '../core/stage.ts';
import { answer } from './rescue.ts';
import type { Tunnels } from './tunnels.ts';
import { noEndpoint } from '../upstream/balancer.ts';
import { fromTransportError } from './transport-errors.ts';

const FORWARDED = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port'];
const SWITCHING_PROTOCOLS = 101;

/** An upgrade on its way to the upstream; settled by whichever of its answers comes first. */
type Pending = {
  ex: Exchange;
  answered: PromiseWithResolvers<void>;
  opened: boolean;
  /** An answer (or giving up) has settled `answered`; later events are the aftermath. */
  settled: boolean;
  /** The request to the upstream, once http-proxy-3 has made it. */
  proxyReq: { destroy(): unknown } | null;
};

export function createTunnelStep(options: { tunnels: Tunnels; trustForwarded: boolean }): Handler {
  const { tunnels } = options;
  const pending = new WeakMap<IncomingMessage, Pending>();
  const proxy = createProxyServer({ ws: true, xfwd: true, xfwdWsProtoAsHttp: true });

  proxy.on('proxyReqWs', (proxyReq, req) => {
    const upgrade = pending.get(req);
    if (upgrade === undefined) return;
    upgrade.proxyReq = proxyReq;
    // Registered after http-proxy-3's own 'upgrade' listener (it registers it once this event
    // returns; the upstream cannot answer before the next tick): that one unshifts the upstream's
    // first bytes and pipes the sockets, and a 'data' listener added before the pipe would swallow them.
    process.nextTick(() => proxyReq.on('upgrade', (_res: IncomingMessage, upstreamSocket: Socket) => opened(upgrade, upstreamSocket)));
    proxyReq.on('response', (res: IncomingMessage) => {
      // Not switching (401, 403, 426...): http-proxy-3 relays this answer and closes the connection.
      if (upgrade.settled) return;
      upgrade.settled = true;
      upgrade.ex.status = res.statusCode ?? 502;
      upgrade.answered.resolve();
    });
  });
  proxy.on('error', (error, req, socket) => {
    const upgrade = pending.get(req);
    if (upgrade === undefined || upgrade.settled) {
      // Answered already (the tunnel is open, or meshlet gave up): the sockets are closing.
      (socket as Socket).destroy();
      return;
    }
    upgrade.settled = true;
    // http-proxy-3 closes the client socket as soon as this handler returns: the reply must be written
    // now, by rescue's own `answer`, rather than when rescue would see a rejection.
    answer(upgrade.ex, fromTransportError(error, upgrade.ex.upstream));
    upgrade.answered.resolve();
  });

  function opened(upgrade: Pending, upstreamSocket: Socket): void {
    const ex = upgrade.ex;
    if (upgrade.settled) {
      upstreamSocket.destroy();
      return;
    }
    upgrade.settled = true;
    upgrade.opened = true;
    ex.status = SWITCHING_PROTOCOLS;
    ex.firstByteMs = ex.elapsedMs();
    tunnels.add(ex.socket as Socket, upstreamSocket, ex.route!.tunnelsOpen, isWebSocket(ex.req));
    upgrade.answered.resolve();
  }

  return function openTunnel(ex: Exchange): Promise<void> {
    const upstream = ex.target;
    if (upstream === null) return Promise.reject(new Error('openTunnel: the exchange was not routed'));
    if (tunnels.full) return Promise.reject(new MeshletError('overloaded', 'too many open tunnels', { retryAfter: 1 }));
    const endpoint = upstream.pickEndpoint();
    if (endpoint === undefined) return Promise.reject(noEndpoint(upstream));
    ex.endpoint = endpoint;
    const req = ex.req;
    req.headers['x-request-id'] = ex.requestId;
    if (!options.trustForwarded) for (const name of FORWARDED) delete req.headers[name];
    const upgrade: Pending = { ex, answered: Promise.withResolvers<void>(), opened: false, settled: false, proxyReq: null };
    pending.set(req, upgrade);
    // Until the upstream answers, the upgrade is an ordinary request: bounded by the first-byte
    // timeout, and cancelled when the client goes away.
    const firstByte = upstream.policy.timeouts.firstByte;
    const timer = firstByte > 0 ? setTimeout(giveUp, firstByte, upgrade, new MeshletError('upstream_timeout', `${upstream.name} did not answer the upgrade in time`)) : null;
    const clientGone = () => {
      ex.clientGone = true;
      giveUp(upgrade, null);
    };
    ex.socket.once('close', clientGone);
    proxy.ws(req, ex.socket, ex.upgradeHead ?? Buffer.alloc(0), { target: endpoint.url, changeOrigin: true });
    return upgrade.answered.promise.finally(() => {
      if (timer !== null) clearTimeout(timer);
      ex.socket.off('close', clientGone);
    });
  };
}

/** Stop waiting for the upstream's answer: with `failure` to answer, or null when the client left. */
function giveUp(upgrade: Pending, failure: MeshletError | null): void {
  if (upgrade.settled) return;
  upgrade.settled = true;
  upgrade.proxyReq?.destroy();
  if (failure === null) upgrade.answered.resolve();
  else upgrade.answered.reject(failure);
}

function isWebSocket(req: IncomingMessage): boolean {
  return req.headers.upgrade?.toLowerCase() === 'websocket';
}
