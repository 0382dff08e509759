/**
 * Sending one fuzz case over a raw socket: its bytes in several writes, then a reset (RST, not FIN) at
 * the chosen point, or a clean close. Every case ends within `hangMs`; one that has neither an answer
 * nor a closed connection by then is reported as a hang.
 */
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Where the client resets: before all bytes are sent, right after, at the first answer byte, after the answer, or never. */
export type ResetPoint = 'mid-send' | 'after-send' | 'first-byte' | 'after-answer' | 'clean';
export const RESET_POINTS: readonly ResetPoint[] = ['mid-send', 'after-send', 'first-byte', 'after-answer', 'clean'];

export type CaseResult = {
  answer: string;
  /** The case saw neither an answer that went quiet nor a close within `hangMs`. */
  hung: boolean;
  /** Who ended the connection. */
  endedBy: 'client' | 'server';
  ms: number;
};

export type SendOptions = {
  port: number;
  bytes: Buffer;
  /** Offsets where the bytes are cut into separate writes. */
  splits: number[];
  reset: ResetPoint;
  /** For `mid-send`: how many bytes go out before the reset. */
  resetAt: number;
  /** An answer with no new byte for this long is taken as complete (keep-alive servers do not close). */
  quietMs: number;
  hangMs: number;
};

export function sendCase(options: SendOptions): Promise<CaseResult> {
  const { bytes, reset } = options;
  const started = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let quiet: NodeJS.Timeout | undefined;
    let endedBy: CaseResult['endedBy'] = 'server';
    let hung = false;
    const socket = connect({ port: options.port, host: '127.0.0.1', noDelay: true });
    const resetNow = () => {
      if (socket.destroyed) return;
      endedBy = 'client';
      socket.resetAndDestroy();
    };
    const hang = setTimeout(() => {
      hung = true;
      resetNow();
    }, options.hangMs);
    socket.on('error', () => {}); // resets from the server are expected; 'close' follows
    socket.on('close', () => {
      clearTimeout(hang);
      clearTimeout(quiet);
      resolve({ answer: Buffer.concat(chunks).toString('latin1'), hung, endedBy, ms: performance.now() - started });
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (reset === 'first-byte') return resetNow();
      clearTimeout(quiet);
      quiet = setTimeout(() => {
        if (reset === 'after-answer') resetNow();
        else if (reset === 'clean') {
          endedBy = 'client';
          socket.end(); // FIN; the server closes its side, or the hang timer reports it
        }
      }, options.quietMs);
    });
    socket.once('connect', () => void writeAll());

    async function writeAll(): Promise<void> {
      const limit = reset === 'mid-send' ? options.resetAt : bytes.length;
      const cuts = [...options.splits.filter((at) => at < limit), limit];
      let from = 0;
      for (const to of cuts) {
        if (socket.destroyed) return;
        socket.write(bytes.subarray(from, to));
        from = to;
        // A pause, so the pieces arrive as separate reads on the other side.
        if (to !== limit) await sleep(1);
      }
      if (reset === 'mid-send' || reset === 'after-send') resetNow();
    }
  });
}
