/**
 * An upstream's outcome history rebuilt from access-log files, for `meshlet breakers what-if --log`:
 * the same entries a sidecar keeps in memory (resilience/outcome-history.ts), from each request's
 * line. A line gives its end (`time`) and length (`durationMs`); its `outcome` is the last attempt's,
 * and a retried request lists every attempt in `tries` (outcome, start and end in ms from the
 * request's start). A refusal by the breaker is `outcome: "rejected"` with `error: "circuit_open"`.
 *
 * The log's times are whole milliseconds, where a sidecar's own history has microseconds: events
 * within one millisecond of each other may replay in another order than they happened. Sampled
 * successes (`telemetry.accessLog.sampleSuccesses` below 1) are missing from the files, and the
 * replay would see more failures than there were.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { FAILED, REFUSED, SUCCEEDED, type HistorySnapshot, type OutcomeClass } from '../resilience/outcome-history.ts';

type Line = { type?: string; upstream?: string; time?: string; durationMs?: number; outcome?: string; error?: string; tries?: { outcome: string; startMs: number; endMs: number }[] };
type Entry = { end: number; kind: OutcomeClass; label: string; latency: number };

const FAILURE_LABELS = new Set(['connect-failure', 'reset', 'timeout']);
const STATUS_5XX = /^5\d\d$/;

export type LogHistory = { history: HistorySnapshot; lines: number; unreadable: number };

/** The outcomes of `upstream` in `files` (JSON lines), between `from` and `to` (wall ms) when given. */
export async function historyFromLogs(files: readonly string[], upstream: string, span: { from?: number; to?: number } = {}): Promise<LogHistory> {
  const entries: Entry[] = [];
  const needle = `"upstream":${JSON.stringify(upstream)}`;
  let lines = 0;
  let unreadable = 0;
  for (const file of files) {
    const reader = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
    for await (const text of reader) {
      // Most lines are other upstreams' or not access lines: skip them before parsing.
      if (!text.includes(needle) || !text.includes('"type":"access"')) continue;
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        unreadable++;
        continue;
      }
      if (line.type !== 'access' || line.upstream !== upstream || line.outcome === undefined) continue;
      lines++;
      outcomesOf(line, entries);
    }
  }
  const kept = entries.filter((e) => (span.from === undefined || e.end >= span.from) && (span.to === undefined || e.end <= span.to));
  kept.sort((a, b) => a.end - b.end);
  return { history: snapshotOf(upstream, kept), lines, unreadable };
}

/** The attempts of one request, as history entries (times in wall ms). */
function outcomesOf(line: Line, into: Entry[]): void {
  const end = Date.parse(line.time ?? '');
  const duration = line.durationMs ?? 0;
  if (Number.isNaN(end)) return;
  const start = end - duration;
  const tries = line.tries ?? [{ outcome: line.outcome!, startMs: 0, endMs: duration }];
  for (const [i, attempt] of tries.entries()) {
    const last = i === tries.length - 1;
    const kind = classify(attempt.outcome, last ? line.error : undefined);
    if (kind === null) continue;
    // A refusal happens as the attempt starts; anything else ends when its outcome was made.
    const at = kind === REFUSED ? start + attempt.startMs : last && line.tries === undefined ? end : start + attempt.endMs;
    into.push({ end: at, kind, label: attempt.outcome, latency: kind === REFUSED ? 0 : Math.max(0, at - (start + attempt.startMs)) });
  }
}

function classify(label: string, error: string | undefined): OutcomeClass | null {
  if (label === 'success') return SUCCEEDED;
  if (FAILURE_LABELS.has(label) || STATUS_5XX.test(label)) return FAILED;
  if (label === 'rejected' && error === 'circuit_open') return REFUSED;
  return null; // the client left, or meshlet refused for another reason: the breaker counts neither
}

function snapshotOf(upstream: string, entries: readonly Entry[]): HistorySnapshot {
  const n = entries.length;
  const history: HistorySnapshot = {
    upstream,
    wallOffset: 0,
    windowOrigin: null,
    ends: new Float64Array(n),
    kinds: new Uint8Array(n),
    labels: new Uint8Array(n),
    latencies: new Float32Array(n),
    labelTable: [],
  };
  const index = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const entry = entries[i]!;
    let label = index.get(entry.label);
    if (label === undefined) index.set(entry.label, (label = history.labelTable.push(entry.label) - 1));
    history.ends[i] = entry.end;
    history.kinds[i] = entry.kind;
    history.labels[i] = Math.min(label, 255);
    history.latencies[i] = entry.latency;
  }
  return history;
}
