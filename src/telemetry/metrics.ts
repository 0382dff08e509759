/**
 * Prometheus metrics (contract: "Metrics"). One Registry per runtime, never prom-client's global one.
 * The request path never hashes label sets: `RouteMetrics` caches the labelled children per route.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Direction = 'inbound' | 'outbound';

/** Long LLM calls and token streams need buckets far past web-request latencies. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'meshlet_requests_total',
    help: 'Requests handled, by the status code sent to the client (499: the client went away first).',
    labelNames: ['direction', 'upstream', 'method', 'code'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'meshlet_request_duration_seconds',
    help: 'Time from request received to response completed.',
    labelNames: ['direction', 'upstream', 'code'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly firstByte = new Histogram({
    name: 'meshlet_response_first_byte_seconds',
    help: 'Time from request received to the response head from the upstream.',
    labelNames: ['direction', 'upstream'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'meshlet_requests_in_flight',
    help: 'Requests being handled now.',
    labelNames: ['direction', 'upstream'] as const,
    registers: [this.registry],
  });
  readonly localReplies = new Counter({
    name: 'meshlet_local_replies_total',
    help: 'Replies meshlet made itself, by error code.',
    labelNames: ['direction', 'upstream', 'reason'] as const,
    registers: [this.registry],
  });
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
  readonly configReloads = new Counter({
    name: 'meshlet_config_reloads_total',
    help: 'Config reloads, by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  private readonly routes = new Map<string, RouteMetrics>();

  constructor(options: { serviceName: string; processMetrics?: boolean }) {
    this.registry.setDefaultLabels({ service: options.serviceName });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'meshlet_' });
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

/** The labelled children of one route, so that recording a request is a few map look-ups. */
export class RouteMetrics {
  readonly inFlight: ReturnType<Metrics['inFlight']['labels']>;
  readonly firstByte: ReturnType<Metrics['firstByte']['labels']>;
  private readonly byMethodAndCode = new Map<string, Map<number, ReturnType<Metrics['requests']['labels']>>>();
  private readonly durationByCode = new Map<number, ReturnType<Metrics['duration']['labels']>>();
  private readonly repliesByReason = new Map<string, ReturnType<Metrics['localReplies']['labels']>>();

  private readonly metrics: Metrics;
  readonly direction: Direction;
  readonly upstream: string;

  constructor(metrics: Metrics, direction: Direction, upstream: string) {
    this.metrics = metrics;
    this.direction = direction;
    this.upstream = upstream;
    this.inFlight = metrics.inFlight.labels(direction, upstream);
    this.firstByte = metrics.firstByte.labels(direction, upstream);
  }

  /** Record one completed request. `method` must already be one of a bounded set. */
  completed(method: string, code: number, seconds: number): void {
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
    histogram.observe(seconds);
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
