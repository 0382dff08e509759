/**
 * The per-try timeout (`retries.perTryTimeout`): each attempt gets this long to its response head,
 * then it is cut with `upstream_timeout` (a `timeout` outcome, retried when `retryOn` names it). Once
 * the head arrived it no longer applies: streams are bounded by the idle and total timeouts.
 */
import type { Attempt } from '../core/attempt.ts';
import { MeshletError } from '../core/errors.ts';
import type { Layer, Send } from '../core/stage.ts';

export function perTryTimeout(ms: number): Layer {
  return (next: Send): Send => {
    if (ms <= 0) return next; // off: the layer costs nothing
    return async function sendWithinPerTryTimeout(attempt) {
      const clock = attempt.ex.clock;
      const timer = clock.setTimeout(cutAttempt, ms, attempt);
      try {
        return await next(attempt);
      } finally {
        clock.clearTimeout(timer);
      }
    };
  };
}

function cutAttempt(attempt: Attempt): void {
  if (attempt.status === 0) attempt.abort(new MeshletError('upstream_timeout', 'the per-try timeout passed before a response head'));
}
