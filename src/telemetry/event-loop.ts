/**
 * Event-loop lag, measured per turn of the loop instead of sampled by a timer.
 *
 * prom-client samples with a repeating timer and records the time between ticks: the interval plus the
 * delay, so at meshlet's 100 ms sampling an idle sidecar read 100 ms. Subtracting the interval fixes the
 * idle reading but not the blindness: a timer only sees a stall that covers one of its ticks, so a 50 ms
 * stall between two 100 ms ticks reads 0, and sampling every 10 ms to see it woke an idle sidecar 100
 * times a second (each wake-up costs 50-90 µs of CPU here, whatever runs in it).
 *
 * Instead, an unref'd immediate runs at the end of every turn (the check phase) and records how long
 * the loop was busy since the previous turn ended: wall time minus the time libuv spent waiting for I/O.
 * That is the longest anything that became ready meanwhile could have waited: ~0 on an idle sidecar,
 * the whole stall when there is one (wall time: a process starved of CPU shows the wait too). An
 * unref'd immediate neither wakes a sleeping loop nor keeps the process alive: an idle loop records
 * nothing and costs nothing; a busy one pays one short callback per turn.
 */
import { createHistogram, performance } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/** The statistics reported at each scrape, over the turns since the previous scrape. */
const STATISTICS = [
  ['min', 'The shortest'],
  ['max', 'The longest'],
  ['mean', 'The mean'],
  ['stddev', 'The standard deviation of the'],
  ['p50', 'The median'],
  ['p90', 'The 90th percentile of the'],
  ['p99', 'The 99th percentile of the'],
] as const;

type Statistic = (typeof STATISTICS)[number][0];

const US_PER_SECOND = 1e6;

/**
 * Turns in microseconds, to 2 significant figures, up to an hour (a longer turn counts as an hour):
 * the statistics scan every bucket at each scrape, and Node's default range (1 ns to 2^53, 3 figures)
 * made that scan 15 times slower, ~1 ms of the scrape's own turn.
 */
const HISTOGRAM = { lowest: 1, highest: 3600 * US_PER_SECOND, figures: 2 } as const;

/**
 * `<prefix>nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds` over the turns of the event
 * loop since the previous scrape, and `<prefix>nodejs_eventloop_lag_seconds`, the last of those turns; all
 * 0 when no turn ended in between. One per registry; `close()` stops measuring.
 */
export class EventLoopLag {
  /** Busy time of each turn, in microseconds; reset at each scrape. */
  private readonly turns = createHistogram(HISTOGRAM);
  private lastTurnUs = 0;
  private turnEndedAt = performance.now();
  private idleAtTurnEnd = performance.nodeTiming.idleTime;
  private next: NodeJS.Immediate | null = null;

  constructor(registry: Registry, prefix: string) {
    const gauges = new Map<Statistic | 'last', Gauge>();
    // Registered first: prom-client scrapes in registration order, so this collect sets the others too.
    gauges.set(
      'last',
      new Gauge({
        name: `${prefix}nodejs_eventloop_lag_seconds`,
        help: 'How long the last turn of the event loop before this scrape kept it busy (delaying whatever became ready meanwhile).',
        registers: [registry],
        collect: () => this.report(gauges),
      }),
    );
    for (const [statistic, what] of STATISTICS) {
      const name = `${prefix}nodejs_eventloop_lag_${statistic}_seconds`;
      const help = `${what} time one turn of the event loop kept it busy, over the turns since the last scrape.`;
      gauges.set(statistic, new Gauge({ name, help, registers: [registry] }));
    }
    this.scheduleTurnEnd();
  }

  /** Stop measuring (the gauges stay registered and read 0 from the next scrape). */
  close(): void {
    if (this.next !== null) clearImmediate(this.next);
    this.next = null;
  }

  private scheduleTurnEnd(): void {
    this.next = setImmediate(this.turnEnded).unref();
  }

  /** The check phase: everything since the previous one, less libuv's wait for I/O, was one turn's work. */
  private readonly turnEnded = (): void => {
    const now = performance.now();
    const idle = performance.nodeTiming.idleTime;
    const busyMs = now - this.turnEndedAt - (idle - this.idleAtTurnEnd);
    this.turnEndedAt = now;
    this.idleAtTurnEnd = idle;
    // Two clocks read apart can leave a tiny negative; the histogram takes integers in its range.
    this.lastTurnUs = Math.min(Math.max(1, Math.round(busyMs * 1000)), HISTOGRAM.highest);
    this.turns.record(this.lastTurnUs);
    this.scheduleTurnEnd();
  };

  private report(gauges: Map<Statistic | 'last', Gauge>): void {
    const turns = this.turns;
    const empty = turns.count === 0;
    const values: Record<Statistic | 'last', number> = {
      last: this.lastTurnUs,
      min: turns.min,
      max: turns.max,
      mean: turns.mean,
      stddev: turns.stddev,
      p50: turns.percentile(50),
      p90: turns.percentile(90),
      p99: turns.percentile(99),
    };
    for (const [statistic, gauge] of gauges) gauge.set(empty ? 0 : values[statistic] / US_PER_SECOND);
    turns.reset();
  }
}
