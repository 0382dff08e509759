/**
 * Sending one attempt through undici, and relaying its response to the client chunk by chunk.
 *
 * A `ForwardAttempt` is the attempt and undici's dispatch handler in one object: no per-request
 * closures. `send()` resolves at the response head with the body held back, so the upstream's layers
 * can read the status before anything is committed; `relay()` is the one place that writes to the
 * client: the head, then the body with backpressure both ways. A head that no layer of the upstream
 * would replace is relayed as it arrives instead (`Upstream.relaysAtHead`, not a retryable failure),
 * and relay() then only waits for the end. Body bytes that arrive before relay()
 * (most responses come whole in the packet of their head) wait in the attempt; past
 * `EARLY_BODY_BYTES` undici is paused. Pausing at every head instead costs undici an unshift and a
 * second parse of those bytes.
 * Failure rules (contract): before the head reaches the client, the attempt rejects with a
 * MeshletError and the rescue stage answers; after it, the client connection is cut, so a truncated
 * body is never presented as complete.
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { Attempt, type ResponseHeaders } from '../core/attempt.ts';
import { CLIENT_GONE, MeshletError } from '../core/errors.ts';
import type { Exchange, ProxyResponse } from '../core/exchange.ts';
import { CLIENT_GONE_LABEL, CLIENT_SLOW_LABEL, DISCARDED_LABEL, SUCCESS, failureLabel } from '../core/outcome.ts';
import { responseHeaders } from './headers.ts';
import { fromTransportError } from './transport-errors.ts';

type Controller = Dispatcher.DispatchController;

/** Body bytes held for a response not yet relayed before undici is asked to stop reading. */
const EARLY_BODY_BYTES = 64 * 1024;

/** Where the response stands. Bytes reach the client only in `relaying`. */
type Phase = 'sending' | 'head' | 'relaying' | 'ended' | 'failed' | 'discarded';

export class ForwardAttempt extends Attempt implements Dispatcher.DispatchHandler {
  private phase: Phase = 'sending';
  private controller: Controller | null = null;
  private pendingAbort: Error | null = null;
  /**
   * Body bytes that arrived before `relay()`: most responses come whole with their head, in one
   * chunk, which needs no array; later chunks go to `moreEarly`.
   */
  private firstEarly: Buffer | null = null;
  private moreEarly: Buffer[] | null = null;
  private earlyBytes = 0;
  /** The response ended before `relay()` was called. */
  private endedEarly = false;
  /** A transport failure after the head and before `relay()`: relay rejects with it. */
  private lateFailure: MeshletError | null = null;
  private head: PromiseWithResolvers<Attempt> | null = null;
  private body: PromiseWithResolvers<void> | null = null;

  override again(): Attempt {
    return new ForwardAttempt(this.ex, this.resendCount + 1);
  }

  override send(): Promise<Attempt> {
    const ex = this.ex;
    const endpoint = this.endpoint;
    if (endpoint === null) return Promise.reject(new Error('ForwardAttempt.send: no endpoint was picked'));
    if (ex.cancelled !== null) return Promise.reject(ex.cancelled);
    ex.attempt = this;
    ex.attempts++;
    ex.endpoint = endpoint;
    endpoint.inFlight++;
    this.sentAt = ex.clock.now();
    this.head = Promise.withResolvers<Attempt>();
    const timeouts = ex.target!.policy.timeouts;
    const hasBody = ex.hasBody;
    if (hasBody && timeouts.idle > 0 && !ex.req.complete) {
      // A client that stalls mid-upload: Node's server destroys a socket whose timeout fires with no
      // 'timeout' listener, and the response's 'close' then cancels the upstream request.
      ex.req.socket.setTimeout(timeouts.idle);
      ex.req.once('end', disarmBodyIdle);
    }
    try {
      endpoint.pool.dispatch(
        {
          path: ex.path,
          method: ex.req.method ?? 'GET',
          headers: ex.head.headers,
          body: hasBody ? requestBody(this) : null,
          headersTimeout: timeouts.firstByte,
          bodyTimeout: timeouts.idle,
        },
        this,
      );
    } catch (error) {
      // undici refuses some requests synchronously (a header value or a path it will not send): the
      // request cannot be sent as it is. Nothing reached the upstream, so it is not its failure.
      this.phase = 'failed';
      this.finish();
      const refusal = new MeshletError('bad_request', `meshlet cannot forward this request: ${(error as Error).message}`, { cause: error });
      return Promise.reject(this.refuse(refusal));
    }
    return this.head.promise;
  }

  override abort(reason: Error): void {
    if (this.controller === null) this.pendingAbort = reason;
    else if (!this.controller.aborted) this.controller.abort(reason);
  }

  override relay(): Promise<void> {
    const phase = this.phase;
    // Relayed already, at its head (onResponseStart): wait for the body, or it is over.
    if (phase === 'relaying') return (this.body ??= Promise.withResolvers<void>()).promise;
    if (phase === 'ended' || (phase === 'failed' && this.ex.status !== 0)) return RESOLVED;
    if (this.lateFailure !== null) return Promise.reject(this.lateFailure);
    const ex = this.ex;
    if (ex.clientGone) {
      this.settle('ignored', CLIENT_GONE_LABEL, null);
      this.discard();
      return RESOLVED;
    }
    if (!this.startRelay()) return Promise.reject(this.lateFailure);
    if (this.endedEarly) {
      this.complete();
      return RESOLVED;
    }
    this.body = Promise.withResolvers<void>();
    if (this.controller?.paused) this.controller.resume();
    return this.body.promise;
  }

  /**
   * The commit point: the head, and the body bytes that arrived with it, go to the client. False when
   * Node refuses to write the head undici accepted (a control character in the reason phrase): the
   * attempt is dropped and `lateFailure` says why.
   */
  private startRelay(): boolean {
    const ex = this.ex;
    const res = ex.res!;
    // An answer that comes before the request body is all in (an early 200, say) ends the connection:
    // what the client still sends of that body must not be read as a next request.
    if (ex.hasBody && !ex.req.complete) res.shouldKeepAlive = false;
    const out = responseHeaders(this.headers, ex.requestId);
    try {
      if (this.statusMessage) res.writeHead(this.status, this.statusMessage, out);
      else res.writeHead(this.status, out);
    } catch (error) {
      res.statusMessage = ''; // Node keeps the refused phrase, and a local reply would inherit it
      this.refuseHead(error as Error);
      return false;
    }
    this.phase = 'relaying';
    ex.firstByteMs = this.headAt - ex.startedAt;
    ex.status = this.status;
    // A body without a length is a stream (SSE, token streams): send the head now, not with the
    // first chunk, so the client sees the status while the model is still thinking.
    if (this.headers['content-length'] === undefined) res.flushHeaders();
    if (this.firstEarly !== null) this.write(this.firstEarly);
    if (this.moreEarly !== null) for (const chunk of this.moreEarly) this.write(chunk);
    this.firstEarly = this.moreEarly = null;
    return true;
  }

  /** The upstream's head cannot go to the client: its failure, answered by rescue with a 502. */
  private refuseHead(error: Error): void {
    const ex = this.ex;
    const failure = new MeshletError('upstream_reset', `${ex.upstream} sent a response head meshlet cannot relay: ${error.message}`, { cause: error });
    this.phase = 'failed';
    this.lateFailure = failure;
    this.firstEarly = this.moreEarly = null;
    if (!this.endedEarly) this.abort(failure);
    this.finish();
    this.settle('failure', failureLabel(failure), failure);
  }

  override discard(): void {
    if (this.phase === 'ended' || this.phase === 'failed' || this.phase === 'discarded') return;
    this.phase = 'discarded';
    this.firstEarly = this.moreEarly = null;
    if (!this.endedEarly) this.abort(DISCARDED);
    this.finish();
    // A failure status keeps its failure outcome; anything else says nothing about the upstream.
    this.settleHead('ignored');
  }

  // undici's dispatch handler

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    if (this.pendingAbort !== null) controller.abort(this.pendingAbort);
  }

  onResponseStart(_controller: Controller, statusCode: number, headers: ResponseHeaders, statusMessage?: string): void {
    // 1xx: Node has already answered the client's Expect itself; interim responses are not relayed.
    if (statusCode < 200) return;
    this.status = statusCode;
    this.statusMessage = statusMessage;
    this.headers = headers;
    this.headAt = this.ex.clock.now();
    const ex = this.ex;
    const target = ex.target!;
    const rules = target.rules;
    if (rules.isFailureStatus(statusCode)) this.retryable = rules.isRetryable(rules.statusLabel(statusCode));
    this.phase = 'head';
    // A head that no layer would replace (not a retryable failure, and no layer from outside in the
    // stack) goes to the client now, in the turn it was read, as a bare forwarder sends it: no wait
    // for the layers' promises, no body bytes held. relay() then just waits for the end.
    if (!this.retryable && target.relaysAtHead && !ex.clientGone) this.startRelay();
    this.head!.resolve(this);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.phase !== 'relaying') {
      if (this.phase !== 'head') return;
      if (this.firstEarly === null) this.firstEarly = chunk;
      else (this.moreEarly ??= []).push(chunk);
      this.earlyBytes += chunk.length;
      if (this.earlyBytes > EARLY_BODY_BYTES) controller.pause(); // relay() resumes
      return;
    }
    if (!this.write(chunk)) {
      controller.pause();
      this.ex.res!.once('drain', resumeUpstream);
    }
  }

  onResponseEnd(): void {
    if (this.phase === 'head') {
      this.endedEarly = true;
      return;
    }
    if (this.phase === 'relaying') this.complete();
  }

  onResponseError(_controller: Controller | null, error: Error): void {
    const ex = this.ex;
    const phase = this.phase;
    if (phase === 'ended' || phase === 'failed' || phase === 'discarded') return;
    this.phase = 'failed';
    this.finish();
    if (ex.clientGone || error === CLIENT_GONE) {
      this.settle('ignored', CLIENT_GONE_LABEL, null);
      this.head?.resolve(this); // nobody is waiting for an answer; rescue sees the client gone
      this.body?.resolve();
      return;
    }
    const failure = fromTransportError(error, ex.upstream);
    // An upload cut for being too slow is the client's doing, not the upstream's.
    if (failure.code === 'request_timeout') this.settle('ignored', CLIENT_SLOW_LABEL, failure);
    else this.settle('failure', failureLabel(failure), failure);
    if (phase === 'sending') {
      this.head!.reject(failure);
      return;
    }
    if (phase === 'head') {
      // Nothing reached the client yet: relay() rejects and rescue answers.
      this.lateFailure = failure;
      return;
    }
    // Bytes already reached the client: cutting the connection is the only honest signal left.
    ex.error = failure;
    ex.res!.destroy(failure);
    this.body?.resolve();
  }

  resume(): void {
    this.controller?.resume();
  }

  private write(chunk: Buffer): boolean {
    this.ex.bytesSent += chunk.length;
    return this.ex.res!.write(chunk);
  }

  private complete(): void {
    this.phase = 'ended';
    this.ex.res!.end();
    this.finish();
    this.settleHead('success');
    this.body?.resolve();
  }

  /** The outcome of a response whose head arrived: its status decides, unless nothing says otherwise. */
  private settleHead(otherwise: 'success' | 'ignored'): void {
    const rules = this.ex.target!.rules;
    if (rules.isFailureStatus(this.status)) this.settle('failure', rules.statusLabel(this.status), null);
    else this.settle(otherwise, otherwise === 'success' ? SUCCESS : DISCARDED_LABEL, null);
  }

  private finish(): void {
    const ex = this.ex;
    this.endpoint!.released();
    if (ex.attempt === this) ex.attempt = null;
  }
}

class DiscardedError extends Error {
  override readonly name = 'DiscardedError';
}
/** Why undici is told to stop a response nobody will read. */
const DISCARDED = new DiscardedError('the response was discarded');

function disarmBodyIdle(this: IncomingMessage): void {
  this.socket.setTimeout(0);
}

/**
 * The client took what was written: undici may read on. Never at once: 'drain' can fire inside
 * another response's write (pipelined requests share a socket), which may run inside undici's parser
 * for another upstream connection, and undici must not be resumed from within a parser callback.
 */
function resumeUpstream(this: ProxyResponse): void {
  const attempt = this.exchange?.attempt as ForwardAttempt | null | undefined;
  if (attempt != null) process.nextTick(resumeAttempt, attempt);
}

function resumeAttempt(attempt: ForwardAttempt): void {
  attempt.resume();
}

const relayAttempt = (attempt: Attempt): Promise<void> => attempt.relay();

/** The body to send: the client's stream, or, when retries keep it, a stream of what was kept. */
function requestBody(attempt: Attempt): Readable {
  const kept = attempt.ex.bodyReplay;
  if (kept === null) return attempt.ex.req;
  return attempt.resendCount === 0 ? kept.first() : kept.replay();
}

/** Returned by relay() when the response is already complete: no promise made per request. */
const RESOLVED: Promise<void> = Promise.resolve();

/** The terminal handler of a listener's stages: send through the upstream's layers, then relay. */
export function forwardToUpstream(ex: Exchange): Promise<void> {
  const upstream = ex.target;
  if (upstream === null) return Promise.reject(new Error('forwardToUpstream: the exchange was not routed'));
  return upstream.send(new ForwardAttempt(ex, 0)).then(relayAttempt);
}
