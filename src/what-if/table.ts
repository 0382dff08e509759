/**
 * The what-if as text: the settings and what each would have done, side by side, then each one's
 * open periods, then the notes. The same rows make the HTML page's table (timeline-svg.ts).
 */
import type { BreakerSettings } from '../resilience/breaker.ts';
import type { Period, RunReport, WhatIfReport } from '../resilience/what-if.ts';

const RUNS = ['inForce', 'candidate'] as const;

/** [what, in force, candidate] rows. */
export function summaryRows(report: WhatIfReport): string[][] {
  const row = (what: string, read: (run: RunReport) => string) => [what, ...RUNS.map((key) => read(report[key]))];
  const setting = (key: keyof BreakerSettings, show: (value: never) => string = String) =>
    row(key, (run) => (run.settings === null ? '(no breaker)' : show(run.settings[key] as never)));
  return [
    setting('errorThresholdPercentage', (v: number) => `${v}%`),
    setting('volumeThreshold'),
    setting('window', duration),
    setting('resetTimeout', duration),
    setting('failureOn', (v: string[]) => v.join(', ')),
    row('times opened', (run) => String(run.periods.length)),
    row('time open', (run) => duration(openTime(run, report.durationMs))),
    row('rejected', (run) => count(run.rejected)),
    row('  that would have succeeded', (run) => count(run.falseTrips)),
    row('  whose outcome is unknown', (run) => count(run.rejectedUnknown)),
    row('failures let through (closed)', (run) => count(run.failuresLetThrough)),
    row('half-open probes', (run) => count(run.probes)),
    row('admitted, outcome unknown', (run) => count(run.admittedUnknown)),
    row('onset of outage to open', (run) => spread(run.periods.map((p) => p.onsetToOpenMs))),
    row('recovery to close', (run) => spread(run.periods.map((p) => p.recoveryToCloseMs))),
  ];
}

export function formatReport(report: WhatIfReport): string {
  const { outcomes } = report;
  const lines = [
    `${report.upstream}: ${count(outcomes.total)} outcomes${report.from === null ? '' : ` from ${report.from} to ${report.to} (${duration(report.durationMs)})`}: ` +
      `${count(outcomes.succeeded)} succeeded, ${count(outcomes.failed)} failed, ${count(outcomes.refusedByBreaker)} refused by the breaker`,
    '',
    ...columns([['', 'in force', 'candidate'], ...summaryRows(report)]),
    '',
    'open periods (opened → closed):',
    ...columns(periodRows(report)),
  ];
  if (report.notes.length > 0) lines.push('', 'notes:', ...report.notes.map((note) => `  - ${note}`));
  return `${lines.join('\n')}\n`;
}

function periodRows(report: WhatIfReport): string[][] {
  const rows = [['', 'in force', 'candidate']];
  const most = Math.max(report.inForce.periods.length, report.candidate.periods.length);
  if (most === 0) return [...rows, ['', 'none', 'none']];
  for (let i = 0; i < most; i++) rows.push([`${i + 1}`, ...RUNS.map((key) => period(report[key].periods[i]))]);
  return rows;
}

function period(p: Period | undefined): string {
  if (p === undefined) return '';
  const to = p.closedAt === null ? 'still open' : clock(p.closedAt);
  const length = p.closedMs === null ? '' : ` (${duration(p.closedMs - p.openedMs)})`;
  return `${clock(p.openedAt)} → ${to}${length}`;
}

function openTime(run: RunReport, end: number): number {
  return run.periods.reduce((sum, p) => sum + ((p.closedMs ?? end) - p.openedMs), 0);
}

/** Left-aligned columns, two spaces apart. */
function columns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)));
  return rows.map((row) => `  ${row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')}`.trimEnd());
}

/** One value, or the median and the longest of several. */
function spread(values: (number | null)[]): string {
  const known = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  if (known.length === 0) return '-';
  if (known.length === 1) return duration(known[0]!);
  return `median ${duration(known[Math.floor((known.length - 1) / 2)]!)}, max ${duration(known.at(-1)!)} (${known.length})`;
}

function count(n: number): string {
  return n.toLocaleString('en');
}

/** `850ms`, `2.5s`, `4m05s`. */
export function duration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`;
  const seconds = Math.round(ms / 1_000);
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  if (m < 60) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** The time of day of an ISO time, to the millisecond. */
function clock(iso: string): string {
  return iso.slice(11, 23);
}
