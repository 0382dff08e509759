/**
 * One JSON line per request. Built by hand rather than through pino's generic serializer, and handed
 * to the destination in batches, because it runs for every request; the line has pino's shape (`level`, `time`, `service`, `msg`) so that log
 * pipelines treat it like every other meshlet log line. The path is logged without its query
 * string, which often carries tokens.
 */
import type { Exchange } from '../proxy/exchange.ts';
import type { Direction } from './metrics.ts';
import { recordedStatus } from './status.ts';

/** Where lines go: the same buffered destination as pino's. */
export type LogDestination = { write(line: string): unknown };

/** Lines are handed to the destination in batches of about this many bytes... */
const BATCH_BYTES = 4096;
/** ...or after this long at most. */
const FLUSH_MS = 250;

export class AccessLog {
  private readonly destination: LogDestination;
  /** `"service":"name"` prebuilt once. */
  private readonly serviceField: string;
  private pending = '';
  private readonly flusher: NodeJS.Timeout;
  /** The timestamp of the last line, reused while the clock shows the same millisecond. */
  private lastMs = 0;
  private lastTime = '';

  constructor(destination: LogDestination, service: string) {
    this.destination = destination;
    this.serviceField = `"service":${JSON.stringify(service)}`;
    this.flusher = setInterval(() => this.flush(), FLUSH_MS);
    this.flusher.unref();
  }

  /** Hand every pending line to the destination. */
  flush(): void {
    if (this.pending === '') return;
    this.destination.write(this.pending);
    this.pending = '';
  }

  close(): void {
    clearInterval(this.flusher);
    this.flush();
  }

  write(ex: Exchange, direction: Direction): void {
    const error = ex.error === null ? '' : `,"error":"${ex.error.code}"`;
    const endpoint = ex.endpoint === null ? '' : `,"endpoint":${JSON.stringify(ex.endpoint.url)}`;
    const firstByte = ex.firstByteMs > 0 ? `,"firstByteMs":${round(ex.firstByteMs)}` : '';
    const gone = ex.clientGone ? ',"clientGone":true' : '';
    this.pending +=
      `{"level":30,"time":"${this.now()}",${this.serviceField},"type":"access","direction":"${direction}",` +
        `"upstream":${JSON.stringify(ex.upstream)},"method":${JSON.stringify(ex.req.method ?? '')},` +
        `"path":${JSON.stringify(pathOnly(ex.path))},"status":${recordedStatus(ex)},"durationMs":${round(ex.elapsedMs())}` +
        `${firstByte},"bytesSent":${ex.bytesSent},"requestId":${JSON.stringify(ex.requestId)}${endpoint}${error}${gone},"msg":"request"}\n`;
    if (this.pending.length >= BATCH_BYTES) this.flush();
  }

  private now(): string {
    const ms = Date.now();
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastTime = new Date(ms).toISOString();
    }
    return this.lastTime;
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function pathOnly(path: string): string {
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}
