/**
 * A minimum upload rate (`limits.minUploadRate`), in the manner of Apache's mod_reqtimeout
 * (`body=20,MinRate=500`): a request body gets `grace` to start, and its allowance grows by one
 * second for every `bytesPerSecond` bytes that arrive. A body that falls behind is cut with 408
 * `request_timeout` and the upstream request is cancelled, so that a client trickling a byte every
 * few seconds cannot hold a slot (and a primary's upload) for minutes. Response streams are not
 * concerned: a model may pause for minutes between tokens.
 *
 * Bodies that arrived with their head (almost all) cost one check; only an upload still arriving when
 * the request is routed gets a timer, re-armed as its allowance grows.
 */
import type { Socket } from 'node:net';
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Handler, Stage } from '../core/stage.ts';

type Upload = { ex: Exchange; startedAt: number; bytesAtStart: number; graceMs: number; bytesPerSecond: number };

export function minUploadRate(options: { grace: number; bytesPerSecond: number }): Stage {
  const { grace, bytesPerSecond } = options;
  return (next: Handler): Handler => {
    if (bytesPerSecond <= 0) return next; // off: the stage costs nothing
    return function watchUploadRate(ex: Exchange): Promise<void> {
      if (ex.hasBody && !ex.req.complete && ex.uploadTimer === null) {
        const upload: Upload = { ex, startedAt: ex.startedAt, bytesAtStart: bytesRead(ex), graceMs: grace, bytesPerSecond };
        ex.uploadTimer = ex.clock.setTimeout(checkUpload, grace, upload);
      }
      return next(ex);
    };
  };
}

function bytesRead(ex: Exchange): number {
  return (ex.socket as Socket).bytesRead ?? 0;
}

function checkUpload(upload: Upload): void {
  const ex = upload.ex;
  ex.uploadTimer = null;
  // Done: the body is in, the answer has begun, or the exchange is over for another reason.
  if (ex.req.complete || ex.status !== 0 || ex.cancelled !== null) return;
  const elapsed = ex.clock.now() - upload.startedAt;
  const received = bytesRead(ex) - upload.bytesAtStart;
  const allowed = upload.graceMs + (received / upload.bytesPerSecond) * 1000;
  if (elapsed < allowed) {
    ex.uploadTimer = ex.clock.setTimeout(checkUpload, allowed - elapsed, upload);
    return;
  }
  ex.cancel(
    new MeshletError('request_timeout', `the request body arrived slower than ${upload.bytesPerSecond} bytes/s (${received} bytes in ${Math.round(elapsed)} ms)`),
  );
}
