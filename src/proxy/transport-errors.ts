/**
 * The one place where transport errors (undici's and the socket's) become meshlet errors.
 */
import { MeshletError } from '../core/errors.ts';
import { MAX_RESPONSE_HEAD_BYTES } from '../upstream/endpoint.ts';

/** Anything unrecognised is a reset: the upstream did not give a complete response head. */
export function fromTransportError(error: unknown, upstream: string): MeshletError {
  if (error instanceof MeshletError) return error;
  const { code, name, message } = (error ?? {}) as { code?: string; name?: string; message?: string };
  // undici's HTTPParserError carries no code; its message says what was wrong with the response.
  if (name === 'HTTPParserError') {
    return new MeshletError('upstream_reset', `${upstream} sent a malformed response: ${message}`, { cause: error });
  }
  switch (code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EADDRNOTAVAIL':
      return new MeshletError('upstream_unreachable', `cannot connect to ${upstream} (${code})`, { cause: error });
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new MeshletError('upstream_timeout', `connect to ${upstream} timed out`, { cause: error });
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new MeshletError('upstream_timeout', `${upstream} sent no response head in time`, { cause: error });
    case 'UND_ERR_BODY_TIMEOUT':
      return new MeshletError('upstream_timeout', `${upstream} went idle while sending the body`, { cause: error });
    case 'UND_ERR_HEADERS_OVERFLOW':
      return new MeshletError('upstream_reset', `${upstream} sent a response head over ${MAX_RESPONSE_HEAD_BYTES / 1024} KiB`, {
        cause: error,
      });
    default:
      return new MeshletError('upstream_reset', `${upstream} closed the connection before a complete response`, {
        cause: error,
      });
  }
}

/** Node's parser error codes that mean "request head too large" rather than "malformed". */
export function isHeaderOverflow(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === 'HPE_HEADER_OVERFLOW';
}
