/**
 * A listener's request path is a stack of stages, each one concern, folded around a terminal
 * handler (the forwarder). Stages are built once per listener: no per-request closures.
 */
import type { Exchange } from './exchange.ts';

/** Handles an exchange; resolves when the response is complete (or the client is gone). */
export type Handler = (ex: Exchange) => Promise<void>;

/** Wraps the rest of the stack: `next` is everything after this stage. */
export type Stage = (next: Handler) => Handler;

/** `compose([a, b, c], end)` runs a, then b, then c, then end; the first stage is outermost. */
export function compose(stages: readonly Stage[], terminal: Handler): Handler {
  return stages.reduceRight<Handler>((next, stage) => stage(next), terminal);
}
