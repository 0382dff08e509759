/**
 * One address an upstream can be reached at, with its pool of keep-alive connections.
 * This and proxy/forward.ts are the only places that touch undici.
 */
import { createRequire } from 'node:module';
import type { Pool as UndiciPool } from 'undici';
import type { Timeouts } from '../config/schema.ts';
import type { PeakEwma } from './ewma.ts';
import { EndpointHealth } from './outlier-detector.ts';

/**
 * How long an idle upstream connection is kept: as long as the server's `Keep-Alive: timeout=N` says,
 * less `KEEP_ALIVE_MARGIN_MS` (so that meshlet never sends on a connection the server is closing), up
 * to `KEEP_ALIVE_MAX_MS`; `KEEP_ALIVE_MS` when it says nothing (before a
 * typical server's own 5 s ends). An agent's calls often come more than 4 s apart: a server that
 * keeps its connections for a minute should not cost a new handshake each time.
 */
const KEEP_ALIVE_MS = 4_000;
const KEEP_ALIVE_MAX_MS = 10 * 60_000;
const KEEP_ALIVE_MARGIN_MS = 2_000;

/**
 * The largest response head meshlet accepts from an upstream (Envoy's default is 60 KiB; undici's,
 * Node's 16 KiB, would turn an agent's large but legitimate headers into 502s). Bounded all the same:
 * a larger head is answered 502 `upstream_reset`, saying so.
 */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

// Only undici's Pool, not its index: the index also loads fetch, WebSocket, caches and more, ~11 MB of
// resident memory that a sidecar never uses. undici's package.json has no `exports` map, so this path
// is as public as its index; no narrower entry point exists.
const Pool = createRequire(import.meta.url)('undici/lib/dispatcher/pool.js') as typeof UndiciPool;

export class Endpoint {
  readonly pool: UndiciPool;
  /** Requests to this endpoint not yet finished. */
  inFlight = 0;
  readonly url: string;
  /** Time to response head, as the load balancer weighs it (ewma.ts). */
  readonly latency: PeakEwma;
  /** Failures in a row and ejections (outlier-detector.ts); kept while the endpoint stays in its set. */
  readonly health = new EndpointHealth();
  private retiring: PromiseWithResolvers<void> | null = null;

  constructor(url: string, timeouts: Timeouts, latency: PeakEwma) {
    this.url = url;
    this.latency = latency;
    this.pool = new Pool(url, {
      // meshlet's 0 (disabled) becomes undici's default rather than an instant timeout.
      connect: { timeout: timeouts.connect || undefined },
      keepAliveTimeout: KEEP_ALIVE_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_MAX_MS,
      keepAliveTimeoutThreshold: KEEP_ALIVE_MARGIN_MS,
      headersTimeout: timeouts.firstByte,
      bodyTimeout: timeouts.idle,
      pipelining: 1,
      maxHeaderSize: MAX_RESPONSE_HEAD_BYTES,
    });
  }

  /** A request to this endpoint ended. */
  released(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.retiring !== null) this.retiring.resolve();
  }

  /** The endpoint left its upstream: close it once its requests in flight are done. */
  async retire(): Promise<void> {
    if (this.inFlight > 0) {
      this.retiring ??= Promise.withResolvers<void>();
      await this.retiring.promise;
    }
    await this.pool.close();
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
