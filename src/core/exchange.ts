/**
 * One request/response pair as it moves through a listener's stages and an upstream's layers; exactly
 * one per request. Ordinary requests answer on `res`; upgrades (and requests Node's parser refused)
 * have no ServerResponse and answer on the raw `socket`.
 *
 * Cancellation: `cancel(reason)` stops the attempt under way and aborts `signal` (made only when a
 * layer asks for it). The client going away and the total deadline both cancel this way.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { Attempt } from './attempt.ts';
import type { Clock, ClockTimer } from './clock.ts';
import { CLIENT_GONE, type MeshletError } from './errors.ts';
import type { Endpoint } from '../upstream/endpoint.ts';
import type { Upstream } from '../upstream/upstream.ts';
import type { RouteMetrics } from '../telemetry/metrics.ts';
import type { ExchangeTrace } from '../telemetry/tracing/server-span.ts';

/** Carries its exchange, so that event listeners shared by all requests can find it via `this`. */
export class ProxyResponse extends ServerResponse<IncomingMessage> {
  exchange: Exchange | null = null;
}

/** A request body kept for retries while it streams to the first attempt (resilience/body-replay.ts). */
export interface ReplayableBody {
  /** Whether all of it that arrived is kept, so that a retry can send it whole. */
  readonly replayable: boolean;
  /** The stream for the first attempt. */
  first(): Readable;
  /** A stream for a retry: the body from its first byte. */
  replay(): Readable;
}

/** What the client asked for, beyond an ordinary request. */
export type ExchangeKind = 'request' | 'upgrade' | 'connect';

/** What every exchange of a listener shares; made once per listener. */
export type ExchangeContext = { readonly clock: Clock };

/** What one scan of the client's raw headers yields (proxy/headers.ts): everything the path needs. */
export type RequestHead = {
  /** Headers to send upstream, flat `[name, value, ...]` as undici takes them. */
  headers: string[];
  host: string | undefined;
  hostCount: number;
  requestId: string;
  transferEncoding: string | undefined;
  contentLength: string | undefined;
  /**
   * Who sent it, for per-source limits: the client's address or, with trustForwardedHeaders, the
   * client the trusted proxy names (the last X-Forwarded-For entry it received).
   */
  source: string;
  /**
   * Per-request control headers (proxy/control-headers.ts), already bounded by nothing: the layers
   * take the smaller of these and their config. -1 when the request did not say.
   */
  maxRetries: number;
  timeoutMs: number;
};

export class Exchange {
  readonly startedAt: number;
  readonly clock: Clock;
  readonly head: RequestHead;
  readonly kind: ExchangeKind;
  /** Upstream name for metrics and logs; `unknown` until routed to a configured or registered name. */
  upstream = 'unknown';
  /** Where the request goes; set by routing. */
  target: Upstream | null = null;
  route: RouteMetrics | null = null;
  /** Path (with query) to send upstream: origin-form even when the client used absolute-form. */
  path: string;
  /** The endpoint of the latest attempt. */
  endpoint: Endpoint | null = null;
  /** The attempt under way, to cancel when the client goes away; null between attempts. */
  attempt: Attempt | null = null;
  /** Attempts made (1 + retries). */
  attempts = 0;
  /** The last attempt's outcome label (core/outcome.ts); '' when no attempt ended. */
  outcome = '';
  /** The last attempt whose outcome was made; earlier ones through its `previous`. */
  settled: Attempt | null = null;
  /** ms after start when the response head that was relayed arrived; 0 if none was. */
  firstByteMs = 0;
  /** Status sent to the client; 0 while nothing has been sent. */
  status = 0;
  bytesSent = 0;
  /** The local reply made, or the failure that cut the response short. */
  error: MeshletError | null = null;
  /** Whether `error` was answered with a local reply (rather than cutting the response). */
  localReply = false;
  /** The client went away before the response was complete. */
  clientGone = false;
  /** Why the exchange was cancelled; null while it runs. */
  cancelled: Error | null = null;
  /** A failure found before the request reached the stages (Node's parser refused it). */
  refused: MeshletError | null = null;
  /** The total deadline's timer, when one is armed. */
  deadline: ClockTimer | null = null;
  /** The upload-rate check's timer, while the request body is still arriving slowly. */
  uploadTimer: ClockTimer | null = null;
  /** The request body, kept for a retry; null when none is kept (attempts send `req` itself). */
  bodyReplay: ReplayableBody | null = null;
  /** A slot held until the exchange finishes (in the listener's concurrency limit, and its source's share). */
  slot: { release(ex: Exchange): void } | null = null;
  /** Its SERVER span and the traceparent sent upstream, while tracing (telemetry/tracing/server-span.ts). */
  trace: ExchangeTrace | null = null;
  private controller: AbortController | null = null;

  readonly req: IncomingMessage;
  /** null for upgrades, CONNECT and refused requests: they answer on `socket`. */
  readonly res: ProxyResponse | null;
  readonly socket: Duplex;
  /** Bytes that arrived after an upgrade's head (the tunnel's first bytes). */
  readonly upgradeHead: Buffer | null;

  constructor(
    req: IncomingMessage,
    res: ProxyResponse | null,
    head: RequestHead,
    context: ExchangeContext,
    kind: ExchangeKind = 'request',
    socket: Duplex = req.socket,
    upgradeHead: Buffer | null = null,
  ) {
    this.clock = context.clock;
    this.startedAt = context.clock.now();
    this.req = req;
    this.res = res;
    this.kind = kind;
    this.socket = socket;
    this.upgradeHead = upgradeHead;
    this.head = head;
    this.path = req.url ?? '/';
    if (res !== null) {
      res.exchange = this;
      res.on('close', onResponseClose);
    }
  }

  /** Route this exchange to `upstream`; counted in flight until the observe stage finishes it. */
  routeTo(upstream: Upstream): void {
    this.target = upstream;
    this.upstream = upstream.name;
    this.route = upstream.route;
    upstream.route.inFlight.inc();
  }

  get requestId(): string {
    return this.head.requestId;
  }

  /** Whether the request has a body to stream upstream (RFC 9112 §6.3). */
  get hasBody(): boolean {
    const length = this.head.contentLength;
    return this.head.transferEncoding !== undefined || (length !== undefined && length !== '0');
  }

  /** Aborted when the exchange is cancelled. Made on first use: most requests never need one. */
  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.cancelled !== null) this.controller.abort(this.cancelled);
    }
    return this.controller.signal;
  }

  /** Stop everything under way for this exchange, once: the attempt, and whoever holds `signal`. */
  cancel(reason: Error): void {
    if (this.cancelled !== null) return;
    this.cancelled = reason;
    this.attempt?.abort(reason);
    this.controller?.abort(reason);
  }

  /** The exchange is over: disarm what it armed. */
  finish(): void {
    if (this.deadline !== null) {
      this.clock.clearTimeout(this.deadline);
      this.deadline = null;
    }
    if (this.uploadTimer !== null) {
      this.clock.clearTimeout(this.uploadTimer);
      this.uploadTimer = null;
    }
    if (this.slot !== null) {
      this.slot.release(this);
      this.slot = null;
    }
  }

  elapsedMs(): number {
    return this.clock.now() - this.startedAt;
  }
}

/** Response 'close' before 'finish': the client went away. Cancel the upstream request at once. */
function onResponseClose(this: ProxyResponse): void {
  const ex = this.exchange;
  if (ex === null || this.writableFinished) return;
  ex.clientGone = true;
  ex.cancel(CLIENT_GONE);
}
