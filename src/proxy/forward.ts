/**
 * Sending one request to one endpoint and streaming the response back, chunk by chunk.
 *
 * A `ForwardAttempt` is undici's dispatch handler for one request: no per-request closures, and the
 * response is written to the client as undici hands it over, with backpressure both ways.
 * Failure rules (contract): before the response head reaches the client, the attempt rejects with a
 * MeshletError and the rescue stage answers; after it, the client connection is cut, so a truncated
 * body is never presented as complete.
 */
import type { IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Timeouts } from '../config/schema.ts';
import { MeshletError, fromTransportError } from './errors.ts';
import type { Exchange, ProxyResponse } from './exchange.ts';
import type { Endpoint } from './endpoint.ts';
import { responseHeaders } from './headers.ts';

type Controller = Dispatcher.DispatchController;

class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
  readonly code = 'MESHLET_CLIENT_GONE';
}
const CLIENT_GONE = new ClientGoneError('the client went away');

/** Forward `ex` to `endpoint`. Resolves when the response is complete or the client is gone. */
export function forward(ex: Exchange, endpoint: Endpoint, timeouts: Timeouts): Promise<void> {
  return new ForwardAttempt(ex, endpoint, timeouts).start();
}

export class ForwardAttempt implements Dispatcher.DispatchHandler {
  private controller: Controller | null = null;
  private pendingAbort: Error | null = null;
  private totalTimer: NodeJS.Timeout | null = null;
  private readonly settled = Promise.withResolvers<void>();
  private readonly res: ProxyResponse;
  private readonly ex: Exchange;
  private readonly endpoint: Endpoint;
  private readonly timeouts: Timeouts;

  constructor(ex: Exchange, endpoint: Endpoint, timeouts: Timeouts) {
    this.ex = ex;
    this.res = ex.res;
    this.endpoint = endpoint;
    this.timeouts = timeouts;
  }

  start(): Promise<void> {
    const ex = this.ex;
    ex.attempt = this;
    ex.endpoint = this.endpoint;
    this.endpoint.inFlight++;
    if (this.timeouts.total > 0) this.totalTimer = setTimeout(onTotalTimeout, this.timeouts.total, this);
    const hasBody = ex.hasBody;
    if (hasBody && this.timeouts.idle > 0 && !ex.req.complete) {
      // A client that stalls mid-upload: Node's server destroys a socket whose timeout fires with no
      // 'timeout' listener, and the response's 'close' then cancels the upstream request.
      ex.req.socket.setTimeout(this.timeouts.idle);
      ex.req.once('end', disarmBodyIdle);
    }
    try {
      this.endpoint.pool.dispatch(
        {
          path: ex.path,
          method: ex.req.method ?? 'GET',
          headers: ex.head.headers,
          body: hasBody ? ex.req : null,
          headersTimeout: this.timeouts.firstByte,
          bodyTimeout: this.timeouts.idle,
        },
        this,
      );
    } catch (error) {
      // undici refuses some requests synchronously (a header value it will not send, say).
      this.onResponseError(null, error as Error);
    }
    return this.settled.promise;
  }

  /** Stop the upstream request at once: the client is gone, or a deadline passed. */
  abort(reason: Error): void {
    if (this.controller === null) this.pendingAbort = reason;
    else if (!this.controller.aborted) this.controller.abort(reason);
  }

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    if (this.pendingAbort !== null) controller.abort(this.pendingAbort);
  }

  onResponseStart(_controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    // 1xx: Node has already answered the client's Expect itself; interim responses are not relayed.
    if (statusCode < 200) return;
    const ex = this.ex;
    ex.firstByteMs = ex.elapsedMs();
    ex.status = statusCode;
    const res = this.res;
    const out = responseHeaders(headers, ex.requestId);
    if (statusMessage) res.writeHead(statusCode, statusMessage, out);
    else res.writeHead(statusCode, out);
    // A body without a length is a stream (SSE, token streams): send the head now, not with the
    // first chunk, so the client sees the status while the model is still thinking.
    if (headers['content-length'] === undefined) res.flushHeaders();
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.ex.bytesSent += chunk.length;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', resumeUpstream);
    }
  }

  onResponseEnd(): void {
    this.res.end();
    this.finish();
    this.settled.resolve();
  }

  onResponseError(_controller: Controller | null, error: Error): void {
    const ex = this.ex;
    this.finish();
    if (ex.clientGone || error === CLIENT_GONE) {
      this.settled.resolve();
      return;
    }
    const failure = fromTransportError(error, ex.upstream);
    if (!this.res.headersSent) {
      this.settled.reject(failure);
      return;
    }
    // Bytes already reached the client: cutting the connection is the only honest signal left.
    ex.error = failure;
    this.res.destroy(failure);
    this.settled.resolve();
  }

  resume(): void {
    this.controller?.resume();
  }

  private finish(): void {
    if (this.totalTimer !== null) clearTimeout(this.totalTimer);
    this.endpoint.inFlight--;
    this.ex.attempt = null;
  }
}

function onTotalTimeout(attempt: ForwardAttempt): void {
  attempt.abort(new MeshletError('upstream_timeout', 'the total request timeout passed'));
}

function disarmBodyIdle(this: IncomingMessage): void {
  this.socket.setTimeout(0);
}

function resumeUpstream(this: ProxyResponse): void {
  this.exchange?.attempt?.resume();
}

/** Response 'close' before 'finish': the client went away. Cancel the upstream request at once. */
export function onResponseClose(this: ProxyResponse): void {
  const ex = this.exchange;
  if (ex === null || this.writableFinished) return;
  ex.clientGone = true;
  ex.attempt?.abort(CLIENT_GONE);
}

/** The terminal handler: forward to an endpoint of the upstream that routing chose. */
export function forwardToTarget(ex: Exchange): Promise<void> {
  const upstream = ex.target;
  if (upstream === null) return Promise.reject(new Error('forwardToTarget: the exchange was not routed'));
  const endpoint = upstream.pickEndpoint();
  if (endpoint === undefined) {
    return Promise.reject(new MeshletError('no_healthy_endpoints', `${upstream.name} has no endpoint to send to`, { retryAfter: 1 }));
  }
  return forward(ex, endpoint, upstream.policy.timeouts);
}
