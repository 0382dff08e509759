/**
 * The client-span layer: a CLIENT span for each attempt of a sampled exchange, child of its SERVER span, between
 * picking the endpoint (known now: `server.address`, `url.full`) and the per-try timeout. A retry is
 * an attempt of its own, so a span of its own, with `http.request.resend_count`. The span ends when
 * the attempt's outcome is made (core/outcome.ts): at the end of the response body, or at the failure.
 *
 * The upstream gets exactly one `traceparent`, naming this attempt's span as its parent: the first
 * attempt puts it in the client's `traceparent`'s place in the headers meshlet sends (or adds it),
 * and each retry overwrites that slot (undici reads the headers when the attempt is dispatched).
 * `tracestate` goes on unchanged. An unsampled exchange's attempts get no span: they send the SERVER
 * span's `traceparent` (not sampled), so that the upstream follows the decision.
 *
 * Off (no `Tracing`), the layer is not there at all: it returns `next`.
 */
import type { Span } from '@opentelemetry/api';
import type { Attempt } from '../../core/attempt.ts';
import { CLIENT_GONE, MeshletError } from '../../core/errors.ts';
import { CLIENT_GONE_LABEL } from '../../core/outcome.ts';
import type { Layer, Send } from '../../core/stage.ts';
import type { Endpoint } from '../../upstream/endpoint.ts';
import type { Upstream } from '../../upstream/upstream.ts';
import {
  HTTP_REQUEST_RESEND_COUNT,
  HTTP_RESPONSE_STATUS_CODE,
  MESHLET_UPSTREAM,
  SERVER_ADDRESS,
  SERVER_PORT,
  URL_FULL,
  redactQuery,
  setError,
  setMethod,
  spanName,
} from './http-semconv.ts';
import { CLIENT_GONE_TYPE, type ExchangeTrace } from './server-span.ts';
import { formatTraceparent } from './trace-context.ts';
import type { SpanSource, Tracing } from './tracing.ts';

type Address = { origin: string; host: string; port: number };

export function clientSpan(tracing: Tracing | null, upstream: Upstream): Layer {
  return (next: Send): Send => {
    if (tracing === null) return next; // off: the layer costs nothing
    upstream.onOutcome(endClientSpan);
    // Each endpoint's origin, host and port, parsed once; forgotten with the endpoint.
    const addresses = new WeakMap<Endpoint, Address>();
    return function traceAttempt(attempt: Attempt): Promise<Attempt> {
      const trace = attempt.ex.trace;
      const spans = tracing.spans;
      if (trace === null || spans === null) return next(attempt);
      if (!trace.recording) {
        trace.propagate(attempt.ex.head.headers, trace.traceparent);
        return next(attempt);
      }
      return recordAttempt(next, startClientSpan(spans, trace, attempt, addresses), attempt);
    };
  };
}

async function recordAttempt(next: Send, span: Span, attempt: Attempt): Promise<Attempt> {
  try {
    return await next(attempt);
  } catch (error) {
    // Most failures made the attempt's outcome, which ended the span; one cancelled before it
    // was sent has no outcome.
    if (attempt.span === span) endUnsent(attempt, span, error);
    throw error;
  }
}

function startClientSpan(spans: SpanSource, trace: ExchangeTrace, attempt: Attempt, addresses: WeakMap<Endpoint, Address>): Span {
  const ex = attempt.ex;
  const method = ex.req.method;
  const span = spans.client(spanName(method), trace.span);
  attempt.span = span;
  if (span.isRecording()) {
    setMethod(span, method);
    const address = addressOf(attempt.endpoint!, addresses);
    span.setAttribute(SERVER_ADDRESS, address.host);
    span.setAttribute(SERVER_PORT, address.port);
    const query = ex.path.indexOf('?');
    span.setAttribute(URL_FULL, query < 0 ? address.origin + ex.path : `${address.origin}${ex.path.slice(0, query + 1)}${redactQuery(ex.path.slice(query + 1))}`);
    span.setAttribute(MESHLET_UPSTREAM, ex.upstream);
    if (attempt.resendCount > 0) span.setAttribute(HTTP_REQUEST_RESEND_COUNT, attempt.resendCount);
  }
  const context = span.spanContext();
  trace.propagate(ex.head.headers, formatTraceparent(context.traceId, context.spanId, context.traceFlags));
  return span;
}

/** An upstream outcome listener: the attempt is over. */
function endClientSpan(attempt: Attempt): void {
  const span = attempt.span;
  if (span === null) return;
  attempt.span = null;
  if (span.isRecording()) {
    if (attempt.status > 0) span.setAttribute(HTTP_RESPONSE_STATUS_CODE, attempt.status);
    const failure = attempt.failure;
    if (failure !== null) setError(span, failure.code, failure.message);
    else if (attempt.label === CLIENT_GONE_LABEL) setError(span, CLIENT_GONE_TYPE, 'the client went away before the response was complete');
    // For a client, every 4xx and 5xx is an error (the conventions' span status for CLIENT spans).
    else if (attempt.status >= 400) setError(span, String(attempt.status), undefined);
  }
  span.end();
}

function endUnsent(attempt: Attempt, span: Span, error: unknown): void {
  attempt.span = null;
  if (span.isRecording()) {
    if (error instanceof MeshletError) setError(span, error.code, error.message);
    else if (error === CLIENT_GONE) setError(span, CLIENT_GONE_TYPE, CLIENT_GONE.message);
    else setError(span, 'internal', (error as Error).message);
  }
  span.end();
}

function addressOf(endpoint: Endpoint, addresses: WeakMap<Endpoint, Address>): Address {
  let address = addresses.get(endpoint);
  if (address === undefined) {
    const url = new URL(endpoint.url);
    const host = url.hostname.charCodeAt(0) === 91 /* [ */ ? url.hostname.slice(1, -1) : url.hostname;
    address = { origin: url.origin, host, port: url.port === '' ? 80 : Number(url.port) };
    addresses.set(endpoint, address);
  }
  return address;
}
