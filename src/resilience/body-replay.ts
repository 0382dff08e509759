/**
 * Keeping a request body for a retry while it streams to the first attempt.
 *
 * The client's body is read once, here, and fed to the current attempt's stream; up to `maxBytes`
 * of it is kept, so that a retry's stream can start with what the upstream already had and go on
 * with the rest as it arrives. Past `maxBytes` nothing more is kept (the body is still forwarded
 * intact) and the request can no longer be retried. Backpressure: the client is paused while the
 * attempt's stream is full, and resumed when undici reads.
 *
 * Only requests that a retry could be sent for after their body was read get one (retry.ts):
 * everything else gives undici the client's stream itself, as before.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

export class BodyReplay {
  private readonly req: IncomingMessage;
  private readonly maxBytes: number;
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private overflowed = false;
  private ended = false;
  private current: Readable;

  constructor(req: IncomingMessage, maxBytes: number) {
    this.req = req;
    this.maxBytes = maxBytes;
    this.current = this.newStream();
    req.on('data', (chunk: Buffer) => this.onData(chunk));
    req.on('end', () => this.onEnd());
  }

  /** Whether all that arrived is kept, so that a retry can send the body whole. */
  get replayable(): boolean {
    return !this.overflowed;
  }

  /** The stream for the first attempt. */
  first(): Readable {
    return this.current;
  }

  /** A stream for a retry: the body from its first byte, then the rest as it arrives. */
  replay(): Readable {
    if (this.overflowed) throw new Error('BodyReplay.replay: the body was not kept');
    const previous = this.current;
    this.current = this.newStream();
    for (const chunk of this.chunks) this.current.push(chunk);
    if (this.ended) this.current.push(null);
    // The failed attempt's stream is nobody's any more.
    previous.destroy();
    return this.current;
  }

  private newStream(): Readable {
    const req = this.req;
    const stream = new Readable({
      read() {
        if (req.isPaused()) req.resume();
      },
    });
    // undici destroys an attempt's body with the attempt's error, and reports that error itself; the
    // stream may outlive undici's own listener (a replaced attempt): its 'error' must never be uncaught.
    stream.on('error', ignore);
    return stream;
  }

  private onData(chunk: Buffer): void {
    if (!this.overflowed) {
      this.bytes += chunk.length;
      if (this.bytes > this.maxBytes) {
        this.overflowed = true;
        this.chunks.length = 0;
      } else {
        this.chunks.push(chunk);
      }
    }
    if (!this.current.destroyed && !this.current.push(chunk)) this.req.pause();
  }

  private onEnd(): void {
    this.ended = true;
    if (!this.current.destroyed) this.current.push(null);
  }
}

function ignore(): void {}
