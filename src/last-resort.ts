/**
 * The last line of defence: an error that escaped every per-socket and per-request handler.
 *
 * Every socket's error path is handled where the socket is used; this is for the one that was missed.
 * A peer's socket error (a reset, a broken pipe) says nothing about meshlet's own state, so it is
 * logged, counted and serving goes on: one client must never take the sidecar down. Anything else is
 * a bug in meshlet, whose state can no longer be trusted: crash-only, after the access-log batch and
 * the logs are flushed, so that the requests that led to it are on record.
 */
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';

/** errno and Node codes a peer can cause on a socket, at any point of an exchange. */
const PEER_ERROR_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_STREAM_WRITE_AFTER_END',
  'ERR_SOCKET_CLOSED',
]);

export type UncaughtKind = 'peer' | 'bug';

/** `peer` for socket errors a peer can cause (and HTTP parser errors of its bytes), else `bug`. */
export function classifyUncaught(error: unknown): UncaughtKind {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return 'bug';
  return PEER_ERROR_CODES.has(code) || code.startsWith('HPE_') || code.startsWith('UND_ERR_') ? 'peer' : 'bug';
}

/**
 * Install the process-wide handlers. `flush` writes out whatever logs are held back (the access-log
 * batch) before a bug stops the process with exit code 70 (EX_SOFTWARE).
 */
export function installLastResort(options: { logger: Logger; counter: Counter<'kind'>; flush: () => void }): void {
  const { logger, counter, flush } = options;
  const onError = (error: unknown): void => {
    const kind = classifyUncaught(error);
    counter.labels(kind).inc();
    if (kind === 'peer') {
      logger.warn({ err: error }, 'a peer error escaped its handler; still serving');
      return;
    }
    try {
      flush(); // first: the requests that led here are on record even if logging the error fails
      logger.fatal({ err: error }, 'bug: unexpected error, exiting');
    } finally {
      process.exit(70);
    }
  };
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
}
