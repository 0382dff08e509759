/**
 * The request path has two levels, each a stack of wrappers folded around a terminal, built once (no
 * per-request closures) and composed in one visible place per listener (proxy/inbound.ts, outbound.ts):
 *
 * - per request, `Stage`s around a `Handler`: server span, framing, drain, limits, route; around
 *   them, in one async frame, the listener rescues (proxy/rescue.ts: errors become replies) and
 *   observes every exchange as it finishes (telemetry/observe.ts);
 * - per upstream, `Layer`s around `Send`: deadline, pick endpoint, ... then the attempt is sent.
 *   Sending resolves at the upstream's response head, before anything reaches the client, so any
 *   layer can still look at the status, retry, or replace the answer; `attempt.relay()` then commits.
 */
import type { Attempt } from './attempt.ts';
import { MeshletError } from './errors.ts';
import type { Exchange } from './exchange.ts';

/** Handles an exchange; resolves when the response is complete (or the client is gone). */
export type Handler = (ex: Exchange) => Promise<void>;

/** Wraps the rest of the request stack: `next` is everything after this stage. */
export type Stage = (next: Handler) => Handler;

/**
 * Sends one attempt; resolves with the attempt that answered once its response head arrived (a retry
 * resolves with a later attempt), or rejects with a MeshletError.
 */
export type Send = (attempt: Attempt) => Promise<Attempt>;

/** Wraps the rest of an upstream's stack: `next` is everything after this layer. */
export type Layer = (next: Send) => Send;

/** `compose([a, b, c], end)` runs a, then b, then c, then end: the first wrapper is outermost. */
export function compose<F>(wrappers: readonly ((next: F) => F)[], terminal: F): F {
  return wrappers.reduceRight<F>((next, wrap) => wrap(next), terminal);
}

/** The innermost step of every upstream stack: put the attempt on the wire. */
export const sendAttempt: Send = (attempt) => attempt.send();

/**
 * The last step of a listener's stages: ordinary requests are forwarded, upgrades tunnelled, and
 * CONNECT (routed only on the outbound listener) served as a connection of its own.
 */
export function lastStep(steps: { request: Handler; upgrade: Handler; connect?: Handler }): Handler {
  const { request, upgrade } = steps;
  const connect = steps.connect ?? refuseConnect;
  return function lastStepByKind(ex) {
    if (ex.kind === 'request') return request(ex);
    return ex.kind === 'upgrade' ? upgrade(ex) : connect(ex);
  };
}

function refuseConnect(): Promise<void> {
  return Promise.reject(new MeshletError('bad_request', 'CONNECT is not supported on this listener'));
}
