/**
 * The server-span stage: a SERVER span for each request a listener receives, started as the stages
 * begin and ended as the exchange finishes (the listener's observe step, after rescue answered), so
 * that it covers everything, local replies included. The span
 * continues the client's trace when its `traceparent` is valid, and starts one otherwise; it ends when
 * the exchange does, with the status sent and, for a failure, `error.type`: meshlet's code for a reply
 * it made itself (`circuit_open`, `unknown_upstream`, ...) or for a response cut short,
 * `client_gone` when the client left, the status for an upstream's 5xx.
 *
 * Off (no `Tracing`), the stage is not there at all: it returns `next`.
 */
import type { Span } from '@opentelemetry/api';
import type { Exchange } from '../../core/exchange.ts';
import type { Handler, Stage } from '../../core/stage.ts';
import {
  CLIENT_ADDRESS,
  ERROR_TYPE,
  HTTP_RESPONSE_STATUS_CODE,
  MESHLET_REQUEST_ID,
  MESHLET_UPSTREAM,
  NETWORK_PROTOCOL_VERSION,
  SERVER_ADDRESS,
  SERVER_PORT,
  URL_SCHEME,
  USER_AGENT_ORIGINAL,
  setError,
  setMethod,
  setTarget,
  spanName,
} from './http-semconv.ts';
import { formatTraceparent, parseTraceparent } from './trace-context.ts';
import type { SpanSource, Tracing } from './tracing.ts';

/** `error.type` of an exchange whose client went away before its response was complete. */
export const CLIENT_GONE_TYPE = 'client_gone';

/** Tracing's state for one exchange (`Exchange.trace`). */
export class ExchangeTrace {
  /** The exchange's SERVER span: the parent of each attempt's CLIENT span. */
  readonly span: Span;
  /** Whether the span is sampled and records attributes; an unsampled one still propagates. */
  readonly recording: boolean;
  /** The trace id when sampled (the access log and exemplars point only at traces a backend keeps), else ''. */
  readonly traceId: string;
  /** Index in `ex.head.headers` of the `traceparent` value sent upstream; -1 until an attempt adds one. */
  slot: number;
  /**
   * An unsampled exchange's `traceparent` for every attempt: the SERVER span's own. Its attempts get no
   * CLIENT spans, which the sampler would drop anyway (the child of an unsampled span is unsampled with
   * every sampler meshlet offers), so nine requests in ten at 10% pay for one span, not one per attempt.
   * '' when recording: each attempt then names its own CLIENT span.
   */
  readonly traceparent: string;

  constructor(span: Span, slot: number) {
    this.span = span;
    this.recording = span.isRecording();
    const context = span.spanContext();
    this.traceId = (context.traceFlags & 1) === 1 ? context.traceId : '';
    this.slot = slot;
    this.traceparent = this.recording ? '' : formatTraceparent(context.traceId, context.spanId, context.traceFlags);
  }

  /** Put `traceparent` in the headers sent upstream: in the client's one's place, or added. */
  propagate(headers: string[], traceparent: string): void {
    if (this.slot < 0) {
      headers.push('traceparent', traceparent);
      this.slot = headers.length - 1;
    } else {
      headers[this.slot] = traceparent;
    }
  }
}

export function serverSpan(tracing: Tracing | null): Stage {
  return (next: Handler): Handler => {
    if (tracing === null) return next; // off: the stage costs nothing
    return function traceExchange(ex: Exchange): Promise<void> {
      const spans = tracing.spans;
      if (spans === null) return next(ex); // the SDK is still loading, or failed to
      // Ended by `endServerSpan` when the exchange finishes (the listener's observe step), after
      // rescue has answered: nothing to wait for here.
      ex.trace = startServerSpan(spans, ex);
      return next(ex);
    };
  };
}

/**
 * Read the client's trace headers in one pass over the headers meshlet sends on: the first
 * `traceparent` keeps its place (each attempt overwrites it), later ones are removed so that the
 * upstream gets exactly one; `tracestate` stays as it came.
 */
function startServerSpan(spans: SpanSource, ex: Exchange): ExchangeTrace {
  const headers = ex.head.headers;
  let slot = -1;
  let several = false;
  let tracestate: string | undefined;
  let userAgent: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 11 && name.toLowerCase() === 'traceparent') {
      if (slot < 0) {
        slot = i + 1;
        continue;
      }
      several = true;
      headers.splice(i, 2);
      i -= 2;
    } else if (name.length === 10) {
      const lower = name.toLowerCase();
      const value = headers[i + 1]!;
      if (lower === 'tracestate') tracestate = tracestate === undefined ? value : `${tracestate},${value}`;
      else if (lower === 'user-agent') userAgent ??= value;
    }
  }
  // Several traceparent headers make none of them valid (W3C Trace Context §3.2): the trace restarts here.
  const parent = slot < 0 || several ? null : parseTraceparent(headers[slot]!);
  const req = ex.req;
  const span = spans.server(spanName(req.method), parent, parent === null ? undefined : tracestate);
  const trace = new ExchangeTrace(span, slot);
  if (trace.recording) {
    setMethod(span, req.method);
    span.setAttribute(URL_SCHEME, 'http');
    span.setAttribute(NETWORK_PROTOCOL_VERSION, req.httpVersion);
    span.setAttribute(MESHLET_REQUEST_ID, ex.requestId);
    const client = req.socket.remoteAddress;
    if (client !== undefined) span.setAttribute(CLIENT_ADDRESS, client);
    if (ex.head.host !== undefined) setServer(span, ex.head.host);
    if (userAgent !== undefined) span.setAttribute(USER_AGENT_ORIGINAL, userAgent);
  }
  // A tunnel has no attempt: its upstream's parent is this span (http-proxy sends `req.headers`).
  if (ex.kind === 'upgrade') {
    const context = span.spanContext();
    req.headers.traceparent = formatTraceparent(context.traceId, context.spanId, context.traceFlags);
  }
  return trace;
}

/**
 * End the exchange's SERVER span with what became of it: called as the exchange finishes, once
 * rescue has answered. An unsampled span records nothing and its end does nothing: it is left alone.
 */
export function endServerSpan(ex: Exchange, trace: ExchangeTrace): void {
  const span = trace.span;
  if (trace.recording) {
    if (ex.kind !== 'connect') setTarget(span, ex.path);
    if (ex.status > 0) span.setAttribute(HTTP_RESPONSE_STATUS_CODE, ex.status);
    span.setAttribute(MESHLET_UPSTREAM, ex.upstream);
    const error = ex.error;
    if (error !== null) {
      // A 4xx meshlet answered is the client's error, not this server's (the conventions leave the status unset).
      if (ex.localReply && error.status < 500) span.setAttribute(ERROR_TYPE, error.code);
      else setError(span, error.code, error.message);
    } else if (ex.clientGone) {
      setError(span, CLIENT_GONE_TYPE, 'the client went away before the response was complete');
    } else if (ex.status >= 500) {
      setError(span, String(ex.status), undefined);
    }
    span.end();
  }
}

/** `server.address` and `server.port` from the Host the client named (`researcher`, `127.0.0.1:15006`, `[::1]:80`). */
function setServer(span: Span, host: string): void {
  const colon = host.lastIndexOf(':');
  const hasPort = colon > host.lastIndexOf(']');
  const address = hasPort ? host.slice(0, colon) : host;
  span.setAttribute(SERVER_ADDRESS, address.charCodeAt(0) === 91 /* [ */ ? address.slice(1, -1) : address);
  if (!hasPort) return;
  const port = Number(host.slice(colon + 1));
  if (Number.isInteger(port)) span.setAttribute(SERVER_PORT, port);
}
