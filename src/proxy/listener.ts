/**
 * A hardened HTTP/1.1 listener that turns everything a client sends into exchanges for one pipeline.
 * Shared by inbound and outbound.
 *
 * Every request is recorded once, through the same stages: ordinary requests, upgrades and CONNECT
 * (answered on the raw socket), and requests Node's parser refused (the framing stage answers them).
 *
 * Hardening: Node's strict parser (never `insecureHTTPParser`); malformed heads answered 400 and too
 * large ones 431 with meshlet's JSON reply; a deadline for receiving the request head (slowloris);
 * no total request deadline, because agent requests may stream for minutes.
 */
import { createServer, IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ListenerLimits } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { MeshletError } from '../core/errors.ts';
import { Exchange, ProxyResponse, type ExchangeContext } from '../core/exchange.ts';
import type { Handler } from '../core/stage.ts';
import { listenOn } from '../listen.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { Observe } from '../telemetry/observe.ts';
import { destroyThis, sendRawLocalReply } from './reply.ts';
import { rescue } from './rescue.ts';
import { RequestIds, scanRequestHead } from './headers.ts';
import type { Tunnels } from './tunnels.ts';
import { isHeaderOverflow } from './transport-errors.ts';

/** How often idle keep-alive connections are closed while draining... */
const DRAIN_SWEEP_MS = 100;
/**
 * ...from this long after the listener stopped accepting. A connection that looks idle may be one
 * whose request is on its way (just accepted, or a keep-alive one reused): closing it at once resets
 * that request, where a moment later it gets a clean 503 `draining` and `Connection: close`.
 */
const IDLE_GRACE_MS = 1_000;

export class Listener {
  readonly server: Server<typeof IncomingMessage, typeof ProxyResponse>;
  readonly name: 'inbound' | 'outbound';
  readonly tunnels: Tunnels;
  /** Exchanges accepted and not yet finished. */
  active = 0;
  /** Shutdown has begun: every response closes its connection, so clients move elsewhere. */
  private closing = false;
  private idleWaiter: PromiseWithResolvers<void> | null = null;
  private readonly run: (ex: Exchange) => Promise<void>;
  /** The stages every new exchange enters; a reload may replace them (setPipeline). */
  private pipeline: Handler;
  /** Records every finished exchange (telemetry/observe.ts): the outermost step, around the stages. */
  private readonly observe: Observe;
  private readonly context: ExchangeContext;
  private readonly trustForwarded: boolean;
  private readonly ids = new RequestIds();
  private readonly logger: Logger;

  constructor(options: {
    name: 'inbound' | 'outbound';
    limits: ListenerLimits;
    trustForwarded: boolean;
    pipeline: Handler;
    /** Records each finished exchange, once, whatever became of it. */
    observe: Observe;
    logger: Logger;
    clock: Clock;
    /** The tunnels that upgrades open: part of drain. */
    tunnels: Tunnels;
    /** `Upgrade` protocols that are tunnelled; other upgrade requests are ordinary requests. */
    upgradeTypes: readonly string[];
    /** Client connections this listener holds at most (connection-limit.ts). */
    maxConnections: number;
    metrics: Metrics;
  }) {
    const { limits } = options;
    this.pipeline = options.pipeline;
    this.observe = options.observe;
    this.name = options.name;
    this.logger = options.logger;
    this.tunnels = options.tunnels;
    this.context = { clock: options.clock };
    this.trustForwarded = options.trustForwarded;
    this.run = async (ex) => {
      try {
        await this.pipeline(ex);
      } catch (error) {
        this.rescue(ex, error);
      } finally {
        this.finish(ex);
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
        // Only upgrades this listener tunnels become 'upgrade' events; any other (h2c, ...) is an
        // ordinary request, whose Upgrade and Connection headers stop here (headers.ts).
        shouldUpgradeCallback: upgradeAllowed(options.upgradeTypes),
      },
      (req, res) => this.onRequest(req, res as ProxyResponse),
    );
    // Connections over the limit are closed by Node as they are accepted, before any parsing.
    this.server.maxConnections = options.maxConnections;
    const refused = options.metrics.connectionsRefused.labels(this.name);
    this.server.on('drop', () => refused.inc());
    options.metrics.watchConnections(this.name, this.server);
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onRawRequest(req, socket, head, 'upgrade'));
    this.server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onRawRequest(req, socket, head, 'connect'));
    this.server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => this.onClientError(error, socket));
  }

  /** Send new exchanges through `pipeline` (a reload); those under way finish where they are. */
  setPipeline(pipeline: Handler): void {
    this.pipeline = pipeline;
  }

  async listen(hostPort: string): Promise<AddressInfo> {
    const address = await listenOn(this.server, hostPort, this.name);
    this.logger.info({ listener: this.name, address: `${address.address}:${address.port}` }, 'listening');
    return address;
  }

  private onRequest(req: IncomingMessage, res: ProxyResponse): void {
    this.active++;
    const ex = new Exchange(req, res, scanRequestHead(req, this.trustForwarded, this.ids), this.context);
    if (this.closing) res.shouldKeepAlive = false;
    if (ex.head.transferEncoding === undefined) {
      void this.run(ex);
      return;
    }
    // A chunked body: one microtask before the pipeline, so that if the parser rejects the chunks that
    // arrived with this head, its clientError runs first and the framing stage forwards nothing.
    Promise.resolve(ex).then(this.run);
  }

  /** Upgrades and CONNECT: Node hands over the socket, and stops watching it. */
  private onRawRequest(req: IncomingMessage, socket: Duplex, head: Buffer, kind: 'upgrade' | 'connect'): void {
    socket.on('error', destroyThis);
    this.active++;
    void this.run(new Exchange(req, null, scanRequestHead(req, this.trustForwarded, this.ids), this.context, kind, socket, head));
  }

  /** The one place errors become replies (rescue.ts). */
  private rescue(ex: Exchange, error: unknown): void {
    try {
      rescue(ex, error, this.logger);
    } catch (bug) {
      // A bug in rescue itself. One request must not take the process down with it.
      this.logger.error({ err: bug, requestId: ex.requestId }, 'request pipeline failed');
      if (ex.res !== null) ex.res.destroy();
      else ex.socket.destroy();
    }
  }

  /** The exchange is over: record it, disarm what it armed, and count it out of the listener. */
  private finish(ex: Exchange): void {
    try {
      this.observe(ex);
    } catch (error) {
      this.logger.error({ err: error, requestId: ex.requestId }, 'recording a request failed');
    }
    ex.finish();
    this.active--;
    if (this.active === 0 && this.idleWaiter !== null) this.idleWaiter.resolve();
  }

  /**
   * Requests Node's parser refused. Usually there is no request object, only the socket: such a
   * request becomes an exchange of its own that the framing stage refuses, so it is answered, logged
   * and counted like any other. When the head was fine but the body is malformed, the exchange exists
   * and the framing stage records it.
   */
  private onClientError(error: Error & { code?: string }, socket: Duplex): void {
    if (error.code === 'ECONNRESET' || error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) {
      socket.destroy();
      return;
    }
    const failure = isHeaderOverflow(error)
      ? new MeshletError('header_too_large', 'request headers exceed the limit', { cause: error })
      : error.code === 'HPE_PAUSED_H2_UPGRADE'
        ? new MeshletError('bad_request', 'HTTP/2 is not spoken on this port: use HTTP/1.1', { cause: error })
        : new MeshletError('bad_request', `malformed request: ${error.message}`, { cause: error });
    const current = (socket as Duplex & { _httpMessage?: ProxyResponse })._httpMessage;
    if (current?.headersSent) {
      // A response is under way on this connection: cut it rather than interleave a second one.
      socket.destroy();
      return;
    }
    if (current?.exchange) {
      // The request is already an exchange; its response must not be written twice. Answer on the
      // socket and close it: the exchange sees a destroyed socket and records the refusal.
      current.exchange.refused = failure;
      sendRawLocalReply(socket, failure, '-', current.exchange.requestId);
      return;
    }
    const refused = new IncomingMessage(socket as Socket);
    this.active++;
    const ex = new Exchange(refused, null, scanRequestHead(refused, this.trustForwarded, this.ids), this.context, 'request', socket);
    ex.refused = failure;
    void this.run(ex);
  }

  /**
   * The first phase of drain: keep serving, but answer every request with `Connection: close`, so
   * that clients reconnect elsewhere while load balancers notice that readiness fails.
   */
  announceDrain(): void {
    this.closing = true;
  }

  /**
   * Stop accepting connections, close idle keep-alive ones, and let active requests and open tunnels
   * finish. Resolves when none is left or after `timeoutMs`, when the rest are cut (tunnels get a
   * WebSocket close frame 1001 where one can be sent).
   */
  async drain(timeoutMs: number): Promise<void> {
    this.closing = true;
    // Closing a listening socket resets the connections still in its accept queue. Close it in the
    // check phase, right after the poll phase has accepted what was queued, to keep that window small.
    await new Promise((resolve) => setImmediate(resolve));
    this.server.close();
    let sweep: NodeJS.Timeout | null = null;
    const grace = setTimeout(() => {
      this.server.closeIdleConnections();
      sweep = setInterval(() => this.server.closeIdleConnections(), DRAIN_SWEEP_MS);
    }, IDLE_GRACE_MS);
    const deadline = AbortSignal.timeout(Math.max(1, timeoutMs));
    try {
      if (this.active > 0) {
        this.idleWaiter = Promise.withResolvers<void>();
        await Promise.race([this.idleWaiter.promise, new Promise((resolve) => deadline.addEventListener('abort', resolve))]);
      }
      await this.tunnels.whenEmpty(deadline);
    } finally {
      clearTimeout(grace);
      if (sweep !== null) clearInterval(sweep);
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

/** An HTTP/1.0 request's Upgrade is ignored (RFC 9110 §7.8): it is an ordinary request. */
function upgradeAllowed(types: readonly string[]): (req: IncomingMessage) => boolean {
  const allowed = new Set(types);
  return (req) => {
    const upgrade = req.headers.upgrade;
    return upgrade !== undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && allowed.has(upgrade.trim().toLowerCase());
  };
}
