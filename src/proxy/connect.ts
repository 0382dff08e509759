/**
 * CONNECT to a known upstream on the outbound listener (contract: Routing). Proxy clients that tunnel
 * by default (undici's ProxyAgent and EnvHttpProxyAgent, and so Node's fetch with HTTP_PROXY) send
 * `CONNECT researcher:80` even for http:// URLs. meshlet answers 200 and then serves the HTTP inside
 * the tunnel itself, as one more connection of the same listener: every request in it passes the
 * same stages as a plain request (policies, metrics, access log), routed to the tunnel's target
 * whatever its Host says. No byte is relayed blindly: meshlet is not an open proxy, so CONNECT to a
 * name it does not know is `unknown_upstream`, and the inbound listener refuses CONNECT altogether.
 *
 * TLS inside the tunnel (an https:// URL) cannot be served: Node's parser refuses the ClientHello and
 * the connection is answered 400 and closed.
 */
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Exchange } from '../core/exchange.ts';
import type { Handler } from '../core/stage.ts';
import { destroyThis } from './reply.ts';

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';
const ESTABLISHED_BYTES = Buffer.byteLength(ESTABLISHED);

export class TerminatedTunnels {
  /** The upstream each terminated tunnel was opened to, by its client socket. */
  private readonly targets = new WeakMap<Duplex, string>();
  private server: EventEmitter | null = null;

  /** The server whose connections the tunnels become (the listener's own). */
  serveWith(server: EventEmitter): void {
    this.server = server;
  }

  /** The upstream a request on `socket` goes to when the socket is a terminated tunnel. */
  targetOf(socket: Duplex): string | undefined {
    return this.targets.get(socket);
  }

  /** The last step for a routed CONNECT: answer 200 and serve the tunnel as a connection. */
  readonly step: Handler = (ex: Exchange): Promise<void> => {
    const socket = ex.socket;
    const server = this.server;
    if (server === null || !socket.writable) {
      ex.clientGone = true;
      socket.destroy();
      return Promise.resolve();
    }
    socket.write(ESTABLISHED);
    ex.status = 200;
    ex.bytesSent = ESTABLISHED_BYTES;
    this.targets.set(socket, ex.upstream);
    // The listener's connection handling takes over from here, error handling included.
    socket.off('error', destroyThis);
    const early = ex.upgradeHead;
    if (early !== null && early.length > 0) socket.unshift(early);
    server.emit('connection', socket);
    return Promise.resolve();
  };
}
