/**
 * Prometheus metrics (contract: "Metrics"). One Registry per runtime, never prom-client's global one.
 * The request path never hashes label sets: `RouteMetrics` caches the series of each route.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { Exchange } from '../core/exchange.ts';
import type { EventLoopLag } from './event-loop.ts';
import { OPENMETRICS_CONTENT_TYPE, OPENMETRICS_TYPE, openMetrics } from './openmetrics.ts';
import { registerProcessMetrics } from './process-metrics.ts';
import { ResilienceMetrics } from './resilience-metrics.ts';
import { CounterFamily, GaugeFamily, HistogramFamily, type CounterSeries, type GaugeSeries, type HistogramSeries } from './series.ts';

export type Direction = 'inbound' | 'outbound';

/**
 * Latency buckets for both kinds of call an agent makes: tool and lookup calls of a millisecond or
 * two through loopback sidecars, and LLM calls and token streams of seconds to ten minutes.
 */
export const DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600,
] as const;

/**
 * The trace id of an exchange, '' when it has none. Tracing sets it on `Metrics.traceIdOf`; the
 * observe stage reads it once per request, for exemplars and the access log.
 */
export type TraceIdSource = (ex: Exchange) => string;

export class Metrics {
  readonly registry = new Registry();
  // Request-path series: plain numbers, formatted at scrape time (see series.ts).
  readonly requests = new CounterFamily(
    this.registry,
    'meshlet_requests_total',
    'Requests handled, by the status code sent to the client (499: the client went away first).',
    ['direction', 'upstream', 'method', 'code'],
  );
  readonly duration = new HistogramFamily(
    this.registry,
    'meshlet_request_duration_seconds',
    'Time from request received to response completed.',
    ['direction', 'upstream', 'code'],
    DURATION_BUCKETS,
  );
  readonly firstByte = new HistogramFamily(
    this.registry,
    'meshlet_response_first_byte_seconds',
    'Time from request received to the response head from the upstream.',
    ['direction', 'upstream'],
    DURATION_BUCKETS,
  );
  readonly inFlight = new GaugeFamily(this.registry, 'meshlet_requests_in_flight', 'Requests being handled now.', [
    'direction',
    'upstream',
  ]);
  readonly localReplies = new CounterFamily(
    this.registry,
    'meshlet_local_replies_total',
    'Replies meshlet made itself, by error code.',
    ['direction', 'upstream', 'reason'],
  );
  readonly upstreamAttempts = new CounterFamily(
    this.registry,
    'meshlet_upstream_attempts_total',
    'Attempts sent to an upstream (first tries and retries), by outcome: success, connect-failure, reset, timeout, a failure status such as 503, discarded, or client-gone and rejected (not counted against the upstream).',
    ['direction', 'upstream', 'outcome'],
  );
  readonly tunnelsOpen = new GaugeFamily(this.registry, 'meshlet_tunnels_open', 'Tunnels (WebSocket upgrades) open now.', [
    'direction',
    'upstream',
  ]);
  // Off the request path: prom-client's own metrics.
  readonly upstreamEndpoints = new Gauge({
    name: 'meshlet_upstream_endpoints',
    help: 'Endpoints of each upstream, by state.',
    labelNames: ['upstream', 'state'] as const,
    registers: [this.registry],
  });
  readonly primaryHealthy = new Gauge({
    name: 'meshlet_primary_healthy',
    help: '1 while the primary passes its health check.',
    registers: [this.registry],
  });
  readonly uncaughtErrors = new Counter({
    name: 'meshlet_uncaught_errors_total',
    help: 'Errors that escaped every handler: kind="peer" (a socket error of a peer; meshlet keeps serving) or "bug" (meshlet exits).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly logLinesDropped = new Counter({
    name: 'meshlet_log_lines_dropped_total',
    help: 'Log lines dropped because stdout could not take them: its reader fell behind (a full pipe) or went away. kind="access" or "lifecycle".',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly connectionsRefused = new Counter({
    name: 'meshlet_connections_refused_total',
    help: 'Client connections closed as they arrived because the listener held limits.maxConnections.',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  /** Listeners whose open connections are counted at scrape time. */
  private readonly servers = new Map<string, { getConnections(cb: (error: Error | null, count: number) => void): unknown }>();
  readonly connectionsOpen = new Gauge({
    name: 'meshlet_connections_open',
    help: 'Client connections open on each listener.',
    labelNames: ['direction'] as const,
    registers: [this.registry],
    collect: async () => {
      for (const [direction, server] of this.servers) {
        const count = await new Promise<number>((resolve) => server.getConnections((error, n) => resolve(error ? 0 : n)));
        this.connectionsOpen.labels(direction).set(count);
      }
    },
  });
  readonly configReloads = new Counter({
    name: 'meshlet_config_reloads_total',
    help: 'Config reloads, by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  /** Set by tracing; null (the default) costs the request path one comparison. */
  traceIdOf: TraceIdSource | null = null;
  /** Whether a scrape asked for OpenMetrics, the only format that carries exemplars: until then none is kept. */
  exemplarsWanted = false;

  /** Breakers, retries, rate limits. */
  readonly resilience = new ResilienceMetrics(this.registry);

  private readonly routes = new Map<string, RouteMetrics>();
  private readonly eventLoop: EventLoopLag | null;

  constructor(options: { serviceName: string; processMetrics?: boolean | undefined }) {
    this.registry.setDefaultLabels({ service: options.serviceName });
    // These series exist from the start, so that a rate over them is defined before the first event.
    for (const kind of ['access', 'lifecycle'] as const) this.logLinesDropped.labels(kind).inc(0);
    for (const kind of ['peer', 'bug'] as const) this.uncaughtErrors.labels(kind).inc(0);
    for (const result of ['success', 'failure'] as const) this.configReloads.labels(result).inc(0);
    this.eventLoop = options.processMetrics === false ? null : registerProcessMetrics(this.registry);
  }

  /** The exposition for a scrape's Accept header: OpenMetrics (with exemplars) when asked, else Prometheus text. */
  async scrape(accept: string | undefined): Promise<{ body: string; contentType: string }> {
    if (accept !== undefined && accept.includes(OPENMETRICS_TYPE)) {
      this.exemplarsWanted = true;
      return { body: await openMetrics(this.registry), contentType: OPENMETRICS_CONTENT_TYPE };
    }
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  /** Stop the event-loop measurement; the series stay registered. */
  close(): void {
    this.eventLoop?.close();
  }

  /** Count `server`'s open connections as `meshlet_connections_open{direction}` at each scrape. */
  watchConnections(direction: string, server: { getConnections(cb: (error: Error | null, count: number) => void): unknown }): void {
    this.servers.set(direction, server);
    this.connectionsRefused.labels(direction).inc(0);
  }

  /** The cached metrics of one (direction, upstream) pair; create once per route, not per request. */
  route(direction: Direction, upstream: string): RouteMetrics {
    const key = `${direction}\0${upstream}`;
    let route = this.routes.get(key);
    if (route === undefined) {
      route = new RouteMetrics(this, direction, upstream);
      this.routes.set(key, route);
    }
    return route;
  }
}

/** The series of one route, so that recording a request is a few map look-ups and increments. */
export class RouteMetrics {
  readonly inFlight: GaugeSeries;
  readonly firstByte: HistogramSeries;
  readonly tunnelsOpen: GaugeSeries;
  private readonly byMethodAndCode = new Map<string, Map<number, CounterSeries>>();
  private readonly durationByCode = new Map<number, HistogramSeries>();
  private readonly repliesByReason = new Map<string, CounterSeries>();
  private readonly attemptsByOutcome = new Map<string, CounterSeries>();
  readonly metrics: Metrics;
  readonly direction: Direction;
  readonly upstream: string;

  constructor(metrics: Metrics, direction: Direction, upstream: string) {
    this.metrics = metrics;
    this.direction = direction;
    this.upstream = upstream;
    this.inFlight = metrics.inFlight.labels(direction, upstream);
    this.firstByte = metrics.firstByte.labels(direction, upstream);
    this.tunnelsOpen = metrics.tunnelsOpen.labels(direction, upstream);
  }

  /** Record the time to the response head; `traceId` ('' for none) may become the bucket's exemplar. */
  firstByteAfter(seconds: number, traceId: string): void {
    if (traceId !== '' && this.metrics.exemplarsWanted) this.firstByte.observeTraced(seconds, traceId, Date.now());
    else this.firstByte.observe(seconds);
  }

  /** Record one completed request. `method` must already be one of a bounded set; `traceId` as above. */
  completed(method: string, code: number, seconds: number, traceId = ''): void {
    let byCode = this.byMethodAndCode.get(method);
    if (byCode === undefined) this.byMethodAndCode.set(method, (byCode = new Map()));
    let counter = byCode.get(code);
    if (counter === undefined) byCode.set(code, (counter = this.metrics.requests.labels(this.direction, this.upstream, method, String(code))));
    counter.inc();
    let histogram = this.durationByCode.get(code);
    if (histogram === undefined) {
      histogram = this.metrics.duration.labels(this.direction, this.upstream, String(code));
      this.durationByCode.set(code, histogram);
    }
    if (traceId !== '' && this.metrics.exemplarsWanted) histogram.observeTraced(seconds, traceId, Date.now());
    else histogram.observe(seconds);
  }

  /** Record one attempt's outcome label (a bounded set: core/outcome.ts). */
  attempted(outcome: string): void {
    let counter = this.attemptsByOutcome.get(outcome);
    if (counter === undefined) {
      counter = this.metrics.upstreamAttempts.labels(this.direction, this.upstream, outcome);
      this.attemptsByOutcome.set(outcome, counter);
    }
    counter.inc();
  }

  localReply(reason: string): void {
    let counter = this.repliesByReason.get(reason);
    if (counter === undefined) {
      counter = this.metrics.localReplies.labels(this.direction, this.upstream, reason);
      this.repliesByReason.set(reason, counter);
    }
    counter.inc();
  }
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE']);

/** Methods are client-chosen strings: anything unusual is `OTHER`, keeping the label bounded. */
export function methodLabel(method: string | undefined): string {
  return method !== undefined && KNOWN_METHODS.has(method) ? method : 'OTHER';
}
