/**
 * "Nothing ambiguous reaches the primary": every request the primary parsed must be one that meshlet
 * itself saw as a request and logged, with the same request id, method and path. A request the primary
 * found that meshlet did not log (a smuggled one, a second request cut from one body) means the two
 * parsers disagreed about where a message ends: request smuggling.
 */
import type { LogLine } from '../with-sidecar.ts';
import type { Received } from './recording-primary.ts';

export type Problem = { kind: string; received: Received; detail: string };

/** The path meshlet logs: origin-form, without the query (which often carries tokens). */
function loggedPath(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/**
 * Match each received request to one access line, each line used as many times as it made attempts
 * (once, unless retried: a case may legitimately send the same id twice, e.g. after a "duplicate a
 * span" mutation).
 * `unlogged` decides which received requests are exempt from the access-log match (known defects).
 */
export function findAmbiguity(received: readonly Received[], accessLines: readonly LogLine[], exempt: (r: Received) => boolean): Problem[] {
  const byId = new Map<string, LogLine[]>();
  for (const line of accessLines) {
    const id = String(line.requestId);
    byId.set(id, [...(byId.get(id) ?? []), line]);
  }
  const problems: Problem[] = [];
  for (const r of received) {
    if (r.hostHeaders !== 1) problems.push({ kind: 'host-count', received: r, detail: `${r.hostHeaders} Host headers` });
    if (r.contentLength && r.transferEncoding) problems.push({ kind: 'cl-and-te', received: r, detail: 'both Content-Length and Transfer-Encoding' });
    if (r.requestId === undefined) {
      problems.push({ kind: 'no-request-id', received: r, detail: 'meshlet always sets x-request-id; this request did not pass through its request path' });
      continue;
    }
    const candidates = byId.get(r.requestId) ?? [];
    const at = candidates.findIndex((line) => line.method === r.method && line.path === loggedPath(r.url));
    if (at !== -1) {
      // One logged request accounts for as many requests at the primary as it made attempts (retries).
      const line = candidates[at]!;
      const left = (typeof line.attempts === 'number' ? line.attempts : 1) - 1;
      if (left <= 0) candidates.splice(at, 1);
      else candidates[at] = { ...line, attempts: left };
      continue;
    }
    if (exempt(r)) continue;
    const seen = candidates.map((line) => `${String(line.method)} ${String(line.path)}`).join(', ');
    problems.push({
      kind: r.requestId.startsWith('smuggled-') ? 'smuggled' : 'unlogged',
      received: r,
      detail: `the primary got ${r.method} ${r.url} (id ${r.requestId}) but meshlet logged ${seen === '' ? 'no request with that id' : seen}`,
    });
  }
  return problems;
}
