/**
 * The what-if as a picture: the upstream's error % over time against both thresholds, each
 * setting's breaker state as bands (closed, open, half-open), and the requests each refused. One
 * self-contained SVG (no script, no font, no link: it opens in any browser offline), or an HTML page
 * around it with the side-by-side table. Bands carry `data-run`, `data-state`, `data-from-ms` and
 * `data-to-ms`, for tools (and tests) to read.
 */
import type { RunReport, WhatIfReport } from '../resilience/what-if.ts';
import { summaryRows } from './table.ts';

const WIDTH = 960;
const LEFT = 110;
const RIGHT = 20;
const PLOT = WIDTH - LEFT - RIGHT;
const ERROR_TOP = 40;
const ERROR_HEIGHT = 160;
const BAND_TOP = ERROR_TOP + ERROR_HEIGHT + 30;
const BAND_HEIGHT = 22;
const REJECT_TOP = BAND_TOP + 2 * (BAND_HEIGHT + 8) + 20;
const REJECT_HEIGHT = 70;
const HEIGHT = REJECT_TOP + REJECT_HEIGHT + 50;
const STATE_COLOURS: Record<string, string> = { closed: '#cfe8cf', open: '#e05050', half_open: '#f0b030' };
const RUN_COLOURS = { 'in-force': '#3366cc', candidate: '#dd7711' } as const;
const RUNS = [['in-force', 'inForce'], ['candidate', 'candidate']] as const;

export function renderSvg(report: WhatIfReport): string {
  const span = Math.max(1, report.durationMs);
  const x = (ms: number) => LEFT + (Math.min(Math.max(ms, 0), span) / span) * PLOT;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<title>${escape(`meshlet breakers what-if: ${report.upstream}`)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    text(LEFT, 20, `${report.upstream}: ${report.outcomes.total} outcomes, ${report.from ?? ''} to ${report.to ?? ''}`, 'bold'),
    ...errorPanel(report, x),
    ...RUNS.flatMap(([run, key], row) => bands(run, report[key], BAND_TOP + row * (BAND_HEIGHT + 8), x)),
    ...legend(),
    ...rejectedPanel(report, x),
    ...timeAxis(report, x),
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}

/** A page with the picture and the table, for a browser (offline). */
export function renderHtml(report: WhatIfReport): string {
  const rows = summaryRows(report)
    .map((row) => `<tr>${row.map((cell, i) => (i === 0 ? `<th>${escape(cell)}</th>` : `<td>${escape(cell)}</td>`)).join('')}</tr>`)
    .join('\n');
  const notes = report.notes.map((note) => `<li>${escape(note)}</li>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(`what-if: ${report.upstream}`)}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}th,td{padding:2px 12px;text-align:left;border-bottom:1px solid #ddd}th{font-weight:normal;color:#555}</style>
</head><body>
<h1>${escape(`Breaker what-if: ${report.upstream}`)}</h1>
${renderSvg(report)}
<table><thead><tr><th></th><th>in force</th><th>candidate</th></tr></thead><tbody>
${rows}
</tbody></table>
<ul>${notes}</ul>
</body></html>
`;
}

function errorPanel(report: WhatIfReport, x: (ms: number) => number): string[] {
  const { bucketMs, errorPercent } = report.timeline;
  const y = (percent: number) => ERROR_TOP + ERROR_HEIGHT - (percent / 100) * ERROR_HEIGHT;
  // A step per bucket; a bucket without known outcomes (all refused) leaves a gap.
  const path = errorPercent
    .map((percent, b) => {
      if (percent === null) return '';
      const move = b === 0 || errorPercent[b - 1] === null ? 'M' : 'L';
      return `${move}${num(x(b * bucketMs))} ${num(y(percent))} H${num(x((b + 1) * bucketMs))}`;
    })
    .join(' ');
  const out = [
    `<rect x="${LEFT}" y="${ERROR_TOP}" width="${PLOT}" height="${ERROR_HEIGHT}" fill="none" stroke="#999"/>`,
    text(LEFT - 8, y(100) + 4, '100%', 'end'),
    text(LEFT - 8, y(50) + 4, '50%', 'end'),
    text(LEFT - 8, y(0) + 4, 'error 0%', 'end'),
    `<path class="error-percent" d="${path}" fill="none" stroke="#333" stroke-width="1.5"/>`,
  ];
  for (const [run, key] of RUNS) {
    const threshold = report[key].settings?.errorThresholdPercentage;
    if (threshold === undefined) continue;
    const at = num(y(threshold));
    out.push(`<line class="threshold" data-run="${run}" x1="${LEFT}" x2="${LEFT + PLOT}" y1="${at}" y2="${at}" stroke="${RUN_COLOURS[run]}" stroke-dasharray="6 4"/>`);
    out.push(text(LEFT + PLOT - 4, Number(at) - 4, `${run === 'in-force' ? 'in force' : 'candidate'} ${threshold}%`, 'end', RUN_COLOURS[run]));
  }
  return out;
}

function bands(run: keyof typeof RUN_COLOURS, report: RunReport, top: number, x: (ms: number) => number): string[] {
  const out = [text(LEFT - 8, top + 15, run === 'in-force' ? 'in force' : 'candidate', 'end', RUN_COLOURS[run])];
  for (const [from, to, state] of report.states) {
    const width = Math.max(0.5, x(to) - x(from));
    out.push(
      `<rect class="band" data-run="${run}" data-state="${state}" data-from-ms="${from}" data-to-ms="${to}" x="${num(x(from))}" y="${top}" width="${num(width)}" height="${BAND_HEIGHT}" fill="${STATE_COLOURS[state]}"><title>${escape(`${state} ${from}–${to} ms`)}</title></rect>`,
    );
  }
  return out;
}

function legend(): string[] {
  const y = BAND_TOP - 10;
  return Object.entries(STATE_COLOURS).flatMap(([state, colour], i) => [
    `<rect x="${LEFT + i * 110}" y="${y - 9}" width="10" height="10" fill="${colour}"/>`,
    text(LEFT + i * 110 + 14, y, state === 'half_open' ? 'half-open' : state),
  ]);
}

function rejectedPanel(report: WhatIfReport, x: (ms: number) => number): string[] {
  const { bucketMs } = report.timeline;
  const most = Math.max(1, ...report.inForce.rejectedPerBucket, ...report.candidate.rejectedPerBucket);
  const out = [
    `<rect x="${LEFT}" y="${REJECT_TOP}" width="${PLOT}" height="${REJECT_HEIGHT}" fill="none" stroke="#999"/>`,
    text(LEFT - 8, REJECT_TOP + 12, `rejected`, 'end'),
    text(LEFT - 8, REJECT_TOP + 26, `(max ${most})`, 'end'),
  ];
  for (const [offset, [run, key]] of RUNS.entries()) {
    report[key].rejectedPerBucket.forEach((count, b) => {
      if (count === 0) return;
      const height = (count / most) * REJECT_HEIGHT;
      const width = Math.max(0.5, (x((b + 1) * bucketMs) - x(b * bucketMs)) / 2);
      out.push(`<rect class="rejected" data-run="${run}" data-count="${count}" x="${num(x(b * bucketMs) + offset * width)}" y="${num(REJECT_TOP + REJECT_HEIGHT - height)}" width="${num(width)}" height="${num(height)}" fill="${RUN_COLOURS[run]}"/>`);
    });
  }
  return out;
}

function timeAxis(report: WhatIfReport, x: (ms: number) => number): string[] {
  const start = report.from === null ? 0 : Date.parse(report.from);
  const y = REJECT_TOP + REJECT_HEIGHT + 18;
  return Array.from({ length: 6 }, (_, i) => {
    const ms = (report.durationMs * i) / 5;
    return text(x(ms), y, new Date(start + ms).toISOString().slice(11, 23), i === 0 ? 'start' : i === 5 ? 'end' : 'middle');
  });
}

function text(x: number, y: number, content: string, anchor = 'start', fill = '#222'): string {
  const weight = anchor === 'bold' ? ' font-weight="bold"' : '';
  const align = anchor === 'bold' ? 'start' : anchor;
  return `<text x="${num(x)}" y="${num(y)}" text-anchor="${align}" fill="${fill}"${weight}>${escape(content)}</text>`;
}

function num(value: number): string {
  return String(Math.round(value * 10) / 10);
}

function escape(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
