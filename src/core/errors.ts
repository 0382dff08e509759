/**
 * The errors meshlet answers with itself. Each has a stable code (the contract's table), an HTTP
 * status and, when it came from the transport, the original error as `cause`. Transport errors become
 * these in one place: `proxy/transport-errors.ts`.
 */

/** Contract: code -> status of every reply meshlet makes itself. */
export const LOCAL_REPLY_STATUS = {
  bad_request: 400,
  unknown_upstream: 404,
  /** The request body arrived slower than `limits.minUploadRate`. */
  request_timeout: 408,
  rate_limited: 429,
  /** One source holds more than `limits.maxSourceShare` of the listener's requests. */
  source_limited: 429,
  header_too_large: 431,
  /** A bug in meshlet: never blamed on the upstream. */
  internal: 500,
  upstream_unreachable: 502,
  upstream_reset: 502,
  circuit_open: 503,
  no_healthy_endpoints: 503,
  overloaded: 503,
  draining: 503,
  upstream_timeout: 504,
} as const;

export type ErrorCode = keyof typeof LOCAL_REPLY_STATUS;

export class MeshletError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds for `Retry-After`, when the condition is expected to pass. */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfter?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeshletError';
    this.code = code;
    this.status = LOCAL_REPLY_STATUS[code];
    this.retryAfter = options?.retryAfter;
  }
}

/** Why an exchange was cancelled when its client went away: not a failure of anyone's. */
export class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
  readonly code = 'MESHLET_CLIENT_GONE';
}

/** One instance for all: cancelling for a departed client allocates nothing. */
export const CLIENT_GONE = new ClientGoneError('the client went away');
