/**
 * A hardened HTTP/1.1 listener that hands each request to a pipeline. Shared by inbound and outbound.
 *
 * Hardening: Node's strict parser (never `insecureHTTPParser`); malformed heads answered 400 and too
 * large ones 431 with meshlet's JSON reply; a deadline for receiving the request head (slowloris);
 * no total request deadline, because agent requests may stream for minutes.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ListenerLimits } from '../config/schema.ts';
import { MeshletError, isHeaderOverflow } from './errors.ts';
import { Exchange, ProxyResponse } from './exchange.ts';
import type { Handler } from './pipeline.ts';
import { sendRawLocalReply } from './reply.ts';
import type { Tunnels } from './tunnels.ts';
import { listenOn } from '../listen.ts';
import { methodLabel, type RouteMetrics } from '../telemetry/metrics.ts';

const OTHER_METHOD = methodLabel(undefined);

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** How often idle keep-alive connections are closed while draining. */
const DRAIN_SWEEP_MS = 100;

export class Listener {
  readonly server: Server<typeof IncomingMessage, typeof ProxyResponse>;
  /** Requests accepted and not yet finished. */
  active = 0;
  private draining = false;
  private idleWaiter: PromiseWithResolvers<void> | null = null;
  private readonly run: (ex: Exchange) => Promise<void>;
  readonly name: 'inbound' | 'outbound';
  private readonly trustForwarded: boolean;
  private readonly logger: Logger;
  private readonly unrouted: RouteMetrics;
  readonly tunnels: Tunnels;

  constructor(options: {
    name: 'inbound' | 'outbound';
    limits: ListenerLimits;
    trustForwarded: boolean;
    pipeline: Handler;
    upgrade: UpgradeHandler;
    logger: Logger;
    /** Where requests refused before routing are counted. */
    unrouted: RouteMetrics;
    /** The tunnels that `upgrade` opens: part of drain. */
    tunnels: Tunnels;
  }) {
    const { limits, pipeline, upgrade } = options;
    this.unrouted = options.unrouted;
    this.tunnels = options.tunnels;
    this.name = options.name;
    this.trustForwarded = options.trustForwarded;
    this.logger = options.logger;
    this.run = async (ex) => {
      try {
        await pipeline(ex);
      } catch (error) {
        // Rescue answers every request error; this is a bug in meshlet. One request must not take the
        // process down with it.
        this.logger.error({ err: error, requestId: ex.requestId }, 'request pipeline failed');
        ex.res.destroy();
      } finally {
        this.finished();
      }
    };
    this.server = createServer(
      {
        ServerResponse: ProxyResponse,
        insecureHTTPParser: false,
        maxHeaderSize: limits.maxHeaderBytes,
        headersTimeout: limits.headersTimeout,
        requestTimeout: 0,
        // Node checks head deadlines on this interval; its 30 s default would let slow heads linger.
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeout / 4))),
        keepAliveTimeout: 5_000,
        requireHostHeader: false, // checked by the framing stage, to answer in meshlet's format
        noDelay: true,
      },
      (req, res) => this.onRequest(req, res as ProxyResponse),
    );
    this.server.on('upgrade', upgrade);
    this.server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => this.onClientError(error, socket));
    this.server.on('connect', onConnectMethod);
  }

  async listen(hostPort: string): Promise<AddressInfo> {
    const address = await listenOn(this.server, hostPort);
    this.logger.info({ listener: this.name, address: `${address.address}:${address.port}` }, 'listening');
    return address;
  }

  private onRequest(req: IncomingMessage, res: ProxyResponse): void {
    this.active++;
    const ex = new Exchange(req, res, this.trustForwarded);
    if (this.draining) res.shouldKeepAlive = false;
    if (ex.head.transferEncoding === undefined) {
      void this.run(ex);
      return;
    }
    // A chunked body: one microtask before the pipeline, so that if the parser rejects the chunks that
    // arrived with this head, its clientError runs first and the framing stage forwards nothing.
    Promise.resolve(ex).then(this.run);
  }

  private finished(): void {
    this.active--;
    if (this.active === 0 && this.idleWaiter !== null) this.idleWaiter.resolve();
  }

  /**
   * Requests Node's parser refused. Usually there is no request object, only the socket; when the
   * head was fine but the body is malformed, the exchange exists and the framing stage records it.
   */
  private onClientError(error: Error & { code?: string }, socket: Duplex): void {
    if (error.code === 'ECONNRESET' || error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) {
      socket.destroy();
      return;
    }
    const failure = isHeaderOverflow(error)
      ? new MeshletError('header_too_large', 'request headers exceed the limit', { cause: error })
      : new MeshletError('bad_request', `malformed request: ${error.message}`, { cause: error });
    const current = (socket as Duplex & { _httpMessage?: ProxyResponse })._httpMessage;
    if (current?.headersSent) {
      // A response is under way on this connection: cut it rather than interleave a second one.
      socket.destroy();
      return;
    }
    if (current === undefined) {
      this.unrouted.localReply(failure.code);
      this.unrouted.completed(OTHER_METHOD, failure.status, 0);
    }
    sendRawLocalReply(socket, failure, '-', current?.exchange?.requestId ?? '-');
  }

  /**
   * Stop accepting connections, close idle keep-alive ones, and let active requests and open tunnels
   * finish. Resolves when none is left or after `timeoutMs`, when the rest are cut (tunnels get a
   * WebSocket close frame 1001 where one can be sent).
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    this.server.close();
    this.server.closeIdleConnections();
    const sweep = setInterval(() => this.server.closeIdleConnections(), DRAIN_SWEEP_MS);
    const deadline = AbortSignal.timeout(Math.max(1, timeoutMs));
    try {
      if (this.active > 0) {
        this.idleWaiter = Promise.withResolvers<void>();
        await Promise.race([this.idleWaiter.promise, new Promise((resolve) => deadline.addEventListener('abort', resolve))]);
      }
      await this.tunnels.whenEmpty(deadline);
    } finally {
      clearInterval(sweep);
      this.server.closeAllConnections();
      this.tunnels.goAway();
    }
  }

  /** Close at once, cutting everything (tests, and after a failed start). */
  close(): void {
    this.server.close();
    this.server.closeAllConnections();
    this.tunnels.destroyAll();
  }
}


/** CONNECT tunnels (HTTPS through a forward proxy) are not something meshlet offers. */
function onConnectMethod(this: Server, req: IncomingMessage, socket: Duplex): void {
  const requestId = req.headers['x-request-id'];
  sendRawLocalReply(socket, new MeshletError('bad_request', 'CONNECT is not supported'), '-', typeof requestId === 'string' ? requestId : randomUUID());
}
