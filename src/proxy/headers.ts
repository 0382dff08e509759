/**
 * Header rules of a proxy (RFC 9110 §7.6.1): hop-by-hop headers, and those named in `Connection`,
 * stop here in both directions; meshlet sets X-Forwarded-* and x-request-id itself.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { RequestHead } from '../core/exchange.ts';
import { parseDuration } from '../config/units.ts';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
/** Node's server has already answered `Expect: 100-continue` itself; the upstream gets the body at once. */
const ANSWERED_HERE = 'expect';
const COMMA = /\s*,\s*/;

export type { RequestHead };

/**
 * Per-request control headers, for callers that know better than the config for one call (as
 * Linkerd's `l5d-*` and Envoy's `x-envoy-*`): `x-meshlet-retries: 0` (at most this many retries) and
 * `x-meshlet-timeout: 5s` (a total deadline; a duration, or milliseconds). They can only tighten the
 * config, never loosen it, an unreadable value is ignored, and every `x-meshlet-*` request header
 * stops at the sidecar.
 */
const CONTROL_PREFIX = 'x-meshlet-';
const RETRIES_HEADER = 'x-meshlet-retries';
const TIMEOUT_HEADER = 'x-meshlet-timeout';
const DIGITS = /^\d{1,6}$/;

/**
 * Request ids for requests that come without one: UUID-shaped (8-4-4-4-12 hex, version 4), unique per
 * sidecar process by a counter in the last 8 hex digits behind a random prefix, drawn anew each time
 * the counter runs out. randomUUID per request cost ~0.5 µs and ~0.6 KB of garbage; this is one short
 * string. Ids are correlation handles, never secrets: that they count up within a process is harmless.
 */
export class RequestIds {
  private prefix = '';
  /** In [2^28, 2^30): always 8 hex digits, and a small integer, whose hex form V8 makes fast. */
  private counter = COUNTER_END;

  next(): string {
    if (this.counter === COUNTER_END) this.draw();
    return this.prefix + (this.counter++).toString(16);
  }

  private draw(): void {
    const random = randomBytes(14);
    random[6] = (random[6]! & 0x0f) | 0x40; // version 4
    random[8] = (random[8]! & 0x3f) | 0x80; // RFC 9562 variant
    const hex = random.toString('hex');
    this.prefix = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 24)}`;
    this.counter = COUNTER_START + (random.readUInt16BE(12) << 12);
  }
}

const COUNTER_START = 2 ** 28;
const COUNTER_END = 2 ** 30;

function controlRetries(value: string): number {
  return DIGITS.test(value) ? Number(value) : -1;
}

function controlTimeout(value: string): number {
  const ms = DIGITS.test(value) ? Number(value) : parseDuration(value.trim());
  return ms === undefined || ms <= 0 ? -1 : ms;
}

/**
 * Build the upstream request headers from the client's, in one pass over `rawHeaders`.
 * `Host` is left out: undici sets it to the endpoint's authority, which is what the upstream serves;
 * the name the client used travels in X-Forwarded-Host.
 */
export function scanRequestHead(req: IncomingMessage, trustForwarded: boolean, ids: RequestIds): RequestHead {
  const raw = req.rawHeaders;
  const listed = connectionListed(raw);
  const headers: string[] = [];
  let host: string | undefined;
  let hostCount = 0;
  let requestId: string | undefined;
  let transferEncoding: string | undefined;
  let contentLength: string | undefined;
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  let maxRetries = -1;
  let timeoutMs = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === 'host') {
      host ??= value;
      hostCount++;
      continue;
    }
    if (lower === 'transfer-encoding') transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
    if (lower === 'content-length') contentLength = value; // the parser refuses duplicates
    if (lower.charCodeAt(0) === 120 /* x */ && lower.startsWith(CONTROL_PREFIX)) {
      // Meant for this sidecar, never passed on.
      if (lower === RETRIES_HEADER) maxRetries = controlRetries(value);
      else if (lower === TIMEOUT_HEADER) timeoutMs = controlTimeout(value);
      continue;
    }
    if (HOP_BY_HOP.has(lower) || lower === ANSWERED_HERE || (listed !== null && listed.has(lower))) continue;
    if (FORWARDED.has(lower)) {
      if (trustForwarded) {
        if (lower === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        else if (lower === 'x-forwarded-proto') forwardedProto ??= value;
        else forwardedHost ??= value;
      }
      continue;
    }
    if (lower === 'x-request-id') {
      if (requestId !== undefined) continue;
      requestId = value;
    }
    headers.push(name, value);
  }
  if (requestId === undefined) {
    requestId = ids.next();
    headers.push('x-request-id', requestId);
  }
  const client = req.socket.remoteAddress ?? 'unknown';
  headers.push(
    'x-forwarded-for',
    forwardedFor === undefined ? client : `${forwardedFor}, ${client}`,
    'x-forwarded-proto',
    forwardedProto ?? 'http',
  );
  const originalHost = forwardedHost ?? host;
  if (originalHost !== undefined) headers.push('x-forwarded-host', originalHost);
  const source = forwardedFor === undefined ? client : forwardedFor.slice(forwardedFor.lastIndexOf(',') + 1).trim();
  return { headers, host, hostCount, requestId, transferEncoding, contentLength, source, maxRetries, timeoutMs };
}

/**
 * Response headers for `writeHead`, flat `[name, value, ...]`: the upstream's minus hop-by-hop ones.
 * Node frames the response itself (Content-Length when given, chunked otherwise).
 */
export function responseHeaders(upstream: Record<string, string | string[] | undefined>, requestId: string): string[] {
  const connection = upstream.connection;
  // Almost every response says just `keep-alive` or `close`, which name no other header.
  const listed = connection === undefined || connection === 'keep-alive' || connection === 'close' ? null : tokens(connection);
  const headers: string[] = [];
  let hasRequestId = false;
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined || HOP_BY_HOP.has(name) || (listed !== null && listed.has(name))) continue;
    if (name === 'x-request-id') hasRequestId = true;
    if (typeof value === 'string') headers.push(name, value);
    else for (const item of value) headers.push(name, item);
  }
  if (!hasRequestId) headers.push('x-request-id', requestId);
  return headers;
}

/** Names listed in the Connection header(s), which are hop-by-hop too; null when there are none. */
function connectionListed(raw: string[]): Set<string> | null {
  let listed: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 10 || raw[i]!.toLowerCase() !== 'connection') continue;
    const value = raw[i + 1]!;
    if (value === 'keep-alive' || value === 'close') continue;
    for (const token of tokens(value)) if (!FRAMING.has(token)) (listed ??= new Set()).add(token);
  }
  return listed;
}

/**
 * Headers that say where the request ends and whom it is for: a client listing them in Connection
 * must not get them removed (`Connection: Content-Length` would send its body on with no length).
 */
const FRAMING = new Set(['content-length', 'host']);

function tokens(value: string | string[]): Set<string> {
  const joined = typeof value === 'string' ? value : value.join(',');
  const set = new Set<string>();
  for (const token of joined.toLowerCase().split(COMMA)) {
    if (token !== '' && token !== 'close' && token !== 'keep-alive') set.add(token);
  }
  return set;
}
