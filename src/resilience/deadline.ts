/**
 * The total timeout (`timeouts.total`): one deadline for the whole exchange, armed at its first
 * attempt and kept across retries and the streaming of the body, never reset per attempt. When it
 * passes, the exchange is cancelled: the attempt under way ends with 504 `upstream_timeout`, or, once
 * the response has begun, the client connection is cut (a truncated body is never presented whole).
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { Layer, Send } from '../core/stage.ts';

export function deadline(totalMs: number): Layer {
  return (next: Send): Send =>
    function armDeadline(attempt) {
      const ex = attempt.ex;
      if (attempt.resendCount === 0) {
        // `x-meshlet-timeout` may shorten it, or set one where the config has none.
        const asked = ex.head.timeoutMs;
        const ms = asked > 0 && (totalMs <= 0 || asked < totalMs) ? asked : totalMs;
        if (ms > 0) ex.deadline = ex.clock.setTimeout(onDeadline, ms, ex);
      }
      return next(attempt);
    };
}

function onDeadline(ex: Exchange): void {
  ex.deadline = null;
  ex.cancel(new MeshletError('upstream_timeout', 'the total request timeout passed'));
}
