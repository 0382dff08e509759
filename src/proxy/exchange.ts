/**
 * One request/response pair as it moves through a listener's pipeline. The stages read and fill it;
 * there is exactly one per request.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import type { MeshletError } from './errors.ts';
import { scanRequestHead, type RequestHead } from './headers.ts';
import type { Endpoint } from './endpoint.ts';
import type { Upstream } from './upstream.ts';
import type { RouteMetrics } from '../telemetry/metrics.ts';
import { onResponseClose, type ForwardAttempt } from './forward.ts';

/** Carries its exchange, so that event listeners shared by all requests can find it via `this`. */
export class ProxyResponse extends ServerResponse<IncomingMessage> {
  exchange: Exchange | null = null;
}

export class Exchange {
  readonly startedAt = performance.now();
  readonly head: RequestHead;
  /** Upstream name for metrics and logs; `unknown` until routed to a configured or registered name. */
  upstream = 'unknown';
  /** Where the request goes; set by routing. */
  target: Upstream | null = null;
  route: RouteMetrics | null = null;
  /** Path (with query) to send upstream: origin-form even when the client used absolute-form. */
  path: string;
  endpoint: Endpoint | null = null;
  /** The upstream request under way, to cancel when the client goes away. */
  attempt: ForwardAttempt | null = null;
  /** ms after start when the upstream's response head arrived; 0 if it never did. */
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

  readonly req: IncomingMessage;
  readonly res: ProxyResponse;

  constructor(req: IncomingMessage, res: ProxyResponse, trustForwarded: boolean) {
    this.req = req;
    this.res = res;
    this.head = scanRequestHead(req, trustForwarded);
    this.path = req.url ?? '/';
    res.exchange = this;
    res.on('close', onResponseClose);
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

  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }
}
