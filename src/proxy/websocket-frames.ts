/**
 * Just enough of WebSocket framing (RFC 6455 §5.2) to know where frames begin, so that meshlet can
 * end a tunnel with a close frame of its own (1001 "going away") without cutting a frame in half.
 * Payloads are never read, copied or unmasked: the tracker only counts bytes.
 */
import { randomFillSync } from 'node:crypto';

/** Close code 1001: the endpoint is going away (a server shutting down). */
const GOING_AWAY = 1001;

export class FrameBoundaries {
  /** Payload bytes of the current frame still to come. */
  private payloadLeft = 0;
  /** Bytes of a frame header seen so far (a header may be split across chunks); at most 14. */
  private readonly header = Buffer.alloc(14);
  private headerLength = 0;

  /** True when the bytes seen so far end exactly at a frame boundary. */
  get atBoundary(): boolean {
    return this.payloadLeft === 0 && this.headerLength === 0;
  }

  /** Account for the next chunk of the stream. */
  see(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.payloadLeft > 0) {
        const skipped = Math.min(this.payloadLeft, chunk.length - offset);
        this.payloadLeft -= skipped;
        offset += skipped;
        continue;
      }
      this.header[this.headerLength++] = chunk[offset++]!;
      const needed = headerSize(this.header, this.headerLength);
      if (needed !== 0 && this.headerLength === needed) {
        this.payloadLeft = payloadSize(this.header);
        this.headerLength = 0;
      }
    }
  }
}

/** Total header size once enough of it is known; 0 while the first two bytes are still missing. */
function headerSize(header: Buffer, length: number): number {
  if (length < 2) return 0;
  const len7 = header[1]! & 0x7f;
  const masked = (header[1]! & 0x80) !== 0;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
}

function payloadSize(header: Buffer): number {
  const len7 = header[1]! & 0x7f;
  if (len7 === 126) return header.readUInt16BE(2);
  if (len7 === 127) return Number(header.readBigUInt64BE(2));
  return len7;
}

/**
 * A close frame with code 1001. `masked` for frames sent to a server (client-to-server frames must be
 * masked, RFC 6455 §5.3), unmasked for frames sent to a client.
 */
export function goingAwayFrame(masked: boolean): Buffer {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(GOING_AWAY);
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  const mask = randomFillSync(Buffer.alloc(4));
  for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload]);
}
