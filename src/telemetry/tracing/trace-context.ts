/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): reading the `traceparent` a client sent
 * and writing the one meshlet sends on. Hand-written rather than a regular expression: it runs for
 * every traced request.
 */

/** The parent named by a valid `traceparent`. */
export type RemoteParent = { traceId: string; spanId: string; traceFlags: number };

const VERSION_00_LENGTH = 55; // 00-<32 hex>-<16 hex>-<2 hex>

/**
 * The parent in a `traceparent` value, or null when it is not valid (the trace then restarts here,
 * §3.2.2.1). A future version is read by its version-00 prefix, as the specification asks.
 */
export function parseTraceparent(value: string): RemoteParent | null {
  const text = value.trim();
  if (text.length < VERSION_00_LENGTH) return null;
  if (!isHex(text, 0, 2) || text.startsWith('ff')) return null;
  if (text.startsWith('00') ? text.length !== VERSION_00_LENGTH : text.length > VERSION_00_LENGTH && text.charCodeAt(VERSION_00_LENGTH) !== DASH) return null;
  if (text.charCodeAt(2) !== DASH || text.charCodeAt(35) !== DASH || text.charCodeAt(52) !== DASH) return null;
  if (!isHex(text, 3, 35) || !isHex(text, 36, 52) || !isHex(text, 53, 55)) return null;
  const traceId = text.slice(3, 35);
  const spanId = text.slice(36, 52);
  if (allZero(traceId) || allZero(spanId)) return null;
  return { traceId, spanId, traceFlags: Number.parseInt(text.slice(53, 55), 16) };
}

/** The `traceparent` value (version 00) naming a span as the parent of what the upstream does. */
export function formatTraceparent(traceId: string, spanId: string, traceFlags: number): string {
  return `00-${traceId}-${spanId}-${(traceFlags & 0xff) < 16 ? '0' : ''}${(traceFlags & 0xff).toString(16)}`;
}

const DASH = 45;

/** Lower-case hex digits only (§3.2.2.2: upper case is invalid). */
function isHex(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function allZero(id: string): boolean {
  for (let i = 0; i < id.length; i++) if (id.charCodeAt(i) !== 48) return false;
  return true;
}
