import type { Exchange } from '../core/exchange.ts';

/** Status recorded when the client went away before any response head was sent (nginx's 499). */
export const CLIENT_CLOSED = 499;

/** The status to record: what the client got, or 499 when it left before getting anything. */
export function recordedStatus(ex: Exchange): number {
  return ex.status === 0 ? CLIENT_CLOSED : ex.status;
}
