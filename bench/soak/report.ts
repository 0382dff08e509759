/**
 * The soak's verdict: a table of meshlet's RSS and open descriptors (before / peak / after, and the
 * limit "after" must be under), the client outcomes per scenario and listener, and every reason to
 * fail. Returns the exit code.
 */
import type { Heap, Usage } from './meshlet.ts';

export type Thresholds = {
  /** After the settle, open descriptors may exceed the baseline by this many. */
  fdsOverBaseline: number;
  /** After the settle, RSS may exceed the baseline by the larger of these two. */
  rssOverBaselineMB: number;
  rssOverBaselineRatio: number;
  /** After the settle, V8's heap in use may exceed the baseline by this much. */
  heapUsedOverBaselineMB: number;
};

type Tally = { ok: number; aborted: number; failed: number; reasons: Map<string, number> };
/** Outcomes by scenario name, then listener. */
export type Counts = Map<string, { inbound: Tally; outbound: Tally }>;

export type SoakResult = {
  settleS: number;
  usage: { before: Usage; peak: Usage; after: Usage | null };
  heap: { before: Heap; after: Heap | null };
  thresholds: Thresholds;
  counts: Counts;
  health: { answered: number; failed: number; slowestMs: number };
  /** meshlet_requests_in_flight summed after the settle (null when meshlet was gone). */
  inFlight: number | null;
  /** What the primary still held after the settle, and how many of its requests were cut short. */
  primary: { connections: number; webSockets: number; cut: number };
  warnings: Map<string, number>;
  died: boolean;
  exit: { code: number | null; signal: NodeJS.Signals | null };
};

export function limits(before: Usage, thresholds: Thresholds): Usage {
  return {
    rssMB: before.rssMB + Math.max(thresholds.rssOverBaselineMB, before.rssMB * thresholds.rssOverBaselineRatio),
    fds: before.fds + thresholds.fdsOverBaseline,
  };
}

export function report(result: SoakResult): number {
  const { before, peak, after } = result.usage;
  const limit = limits(before, result.thresholds);
  const problems: string[] = [];

  const mark = (value: number | undefined, max: number) => (value === undefined ? 'n/a' : value <= max ? 'ok' : 'OVER');
  console.log(`\nmeshlet, before load / peak / ${result.settleS.toFixed(0)} s after load:`);
  console.log(row('', 'before', 'peak', 'after', 'limit', ''));
  console.log(row('RSS (MB)', before.rssMB.toFixed(1), peak.rssMB.toFixed(1), after?.rssMB.toFixed(1) ?? '-', `<= ${limit.rssMB.toFixed(1)}`, mark(after?.rssMB, limit.rssMB)));
  console.log(row('open fds', before.fds, peak.fds, after?.fds ?? '-', `<= ${limit.fds}`, mark(after?.fds, limit.fds)));
  const { before: heapBefore, after: heapAfter } = result.heap;
  const heapLimit = heapBefore.usedMB + result.thresholds.heapUsedOverBaselineMB;
  console.log(row('V8 heap used', heapBefore.usedMB.toFixed(1), '', heapAfter?.usedMB.toFixed(1) ?? '-', `<= ${heapLimit.toFixed(1)}`, mark(heapAfter?.usedMB, heapLimit)));
  console.log(row('V8 heap size', heapBefore.totalMB.toFixed(1), '', heapAfter?.totalMB.toFixed(1) ?? '-', '', ''));
  if (heapAfter && heapAfter.usedMB > heapLimit) problems.push(`V8 heap in use did not come back near baseline: ${heapAfter.usedMB.toFixed(1)} MB > ${heapLimit.toFixed(1)} MB`);
  if (after && after.rssMB > limit.rssMB) problems.push(`RSS did not come back near baseline: ${after.rssMB.toFixed(1)} MB > ${limit.rssMB.toFixed(1)} MB`);
  if (after && after.fds > limit.fds) problems.push(`open fds did not come back to baseline: ${after.fds} > ${limit.fds}`);

  let failedTotal = 0;
  console.log(`\nclient outcomes (ok / aborted on purpose / failed):`);
  console.log(row('scenario', 'inbound', '', 'outbound', '', '', 26));
  for (const [name, { inbound, outbound }] of result.counts) {
    const cell = (t: Tally) => `${t.ok} / ${t.aborted} / ${t.failed}`;
    console.log(row(name, cell(inbound), '', cell(outbound), '', '', 26));
    failedTotal += inbound.failed + outbound.failed;
    for (const [listener, t] of [['inbound', inbound], ['outbound', outbound]] as const) {
      for (const [reason, n] of t.reasons) console.log(`    ${listener}: ${n} x ${reason}`);
    }
  }
  const total = [...result.counts.values()].reduce((sum, { inbound, outbound }) => sum + inbound.ok + inbound.aborted + inbound.failed + outbound.ok + outbound.aborted + outbound.failed, 0);
  console.log(`  total ${total} exchanges, ${failedTotal} failed`);
  if (failedTotal > 0) problems.push(`${failedTotal} client exchanges failed (reasons above)`);

  console.log(`\nadmin /healthz: ${result.health.answered} answered, ${result.health.failed} missed, slowest ${result.health.slowestMs.toFixed(0)} ms`);
  if (result.health.failed > 0) problems.push(`/healthz missed ${result.health.failed} probes`);
  console.log(`requests in flight after the settle: ${result.inFlight ?? '-'}`);
  if (result.inFlight !== null && result.inFlight !== 0) problems.push(`${result.inFlight} requests still in flight after the settle`);
  console.log(`primary after the settle: ${result.primary.connections} connections, ${result.primary.webSockets} WebSockets open; ${result.primary.cut} requests were cut short by meshlet`);
  for (const [line, n] of result.warnings) console.log(`meshlet log: ${n} x ${line}`);
  if ([...result.warnings.keys()].some((key) => key.startsWith('error'))) problems.push('meshlet logged errors (above)');

  if (result.died) problems.push(`meshlet died during the soak (exit code ${result.exit.code}, signal ${result.exit.signal})`);
  else {
    console.log(`SIGTERM: exit code ${result.exit.code}${result.exit.signal ? `, killed by ${result.exit.signal} after 15 s` : ''}`);
    if (result.exit.code !== 0) problems.push('meshlet did not drain and exit 0 on SIGTERM');
  }

  console.log(problems.length === 0 ? '\nsoak: PASS' : `\nsoak: FAIL\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return problems.length === 0 ? 0 : 1;
}

function row(label: string, a: string | number, b: string | number, c: string | number, d: string, e: string, width = 12): string {
  return `  ${label.padEnd(width)}${String(a).padStart(16)}${String(b).padStart(10)}${String(c).padStart(16)}${d.padStart(12)}  ${e}`;
}
