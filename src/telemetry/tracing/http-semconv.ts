/**
 * The stable HTTP semantic conventions (https://opentelemetry.io/docs/specs/semconv/http/http-spans/)
 * as meshlet's spans use them: attribute names, span names and span status. Names are spelled here
 * rather than imported from `@opentelemetry/semantic-conventions`, so that the request path's modules
 * load no OpenTelemetry package while tracing is off.
 */
import type { Span } from '@opentelemetry/api';

export const HTTP_REQUEST_METHOD = 'http.request.method';
export const HTTP_REQUEST_METHOD_ORIGINAL = 'http.request.method_original';
export const HTTP_REQUEST_RESEND_COUNT = 'http.request.resend_count';
export const HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
export const URL_PATH = 'url.path';
export const URL_QUERY = 'url.query';
export const URL_SCHEME = 'url.scheme';
export const URL_FULL = 'url.full';
export const SERVER_ADDRESS = 'server.address';
export const SERVER_PORT = 'server.port';
export const CLIENT_ADDRESS = 'client.address';
export const USER_AGENT_ORIGINAL = 'user_agent.original';
export const NETWORK_PROTOCOL_VERSION = 'network.protocol.version';
export const ERROR_TYPE = 'error.type';
/** meshlet's own: the upstream the request was routed to (`primary` inbound), and the request id in its logs. */
export const MESHLET_UPSTREAM = 'meshlet.upstream';
export const MESHLET_REQUEST_ID = 'meshlet.request_id';

/** `SpanStatusCode.ERROR`, spelled out so that this module needs no runtime import. */
const STATUS_ERROR = 2;

/** The methods the conventions know; any other is `_OTHER`, with the original kept aside. */
const KNOWN_METHODS: ReadonlySet<string> = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE', 'QUERY']);

/**
 * The span name: the method alone (`GET`), never the path, which is unbounded; `HTTP` for a method
 * the conventions do not know. meshlet has no route template to add.
 */
export function spanName(method: string | undefined): string {
  return method !== undefined && KNOWN_METHODS.has(method) ? method : 'HTTP';
}

/** `http.request.method`, and `http.request.method_original` for a method outside the known set. */
export function setMethod(span: Span, method: string | undefined): void {
  if (method !== undefined && KNOWN_METHODS.has(method)) {
    span.setAttribute(HTTP_REQUEST_METHOD, method);
    return;
  }
  span.setAttribute(HTTP_REQUEST_METHOD, '_OTHER');
  if (method !== undefined) span.setAttribute(HTTP_REQUEST_METHOD_ORIGINAL, method);
}

/** The span failed: `error.type` (a bounded code) and an ERROR status with a message for people. */
export function setError(span: Span, type: string, message: string | undefined): void {
  span.setAttribute(ERROR_TYPE, type);
  span.setStatus(message === undefined ? { code: STATUS_ERROR } : { code: STATUS_ERROR, message });
}

/** `url.path` and `url.query` of an origin-form target. */
export function setTarget(span: Span, target: string): void {
  const query = target.indexOf('?');
  if (query < 0) {
    span.setAttribute(URL_PATH, target);
    return;
  }
  span.setAttribute(URL_PATH, target.slice(0, query));
  span.setAttribute(URL_QUERY, redactQuery(target.slice(query + 1)));
}

/** Query parameters whose values the conventions ask to redact by default: signatures and keys in URLs. */
const SENSITIVE_PARAMETERS = ['AWSAccessKeyId', 'Signature', 'sig', 'X-Goog-Signature'];

/** The query with the values of sensitive parameters replaced by `REDACTED`. */
export function redactQuery(query: string): string {
  let sensitive = false;
  for (const name of SENSITIVE_PARAMETERS) sensitive ||= query.includes(name);
  if (!sensitive) return query;
  return query
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      return equals > 0 && SENSITIVE_PARAMETERS.includes(pair.slice(0, equals)) ? `${pair.slice(0, equals)}=REDACTED` : pair;
    })
    .join('&');
}
