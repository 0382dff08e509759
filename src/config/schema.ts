/**
 * The config schema: the single source of truth for validation, defaults, TypeScript types
 * (`Config` below) and the JSON Schema in `config/meshlet.schema.json`.
 *
 * Every object is strict (unknown keys are errors) and every field but `service.name` has a default.
 * Durations and sizes are strings in YAML and numbers (milliseconds, bytes) once parsed.
 */
import { z } from 'zod';
import { DURATION_HINT, DURATION_PATTERN, SIZE_HINT, SIZE_PATTERN, parseDuration, parseSize } from './units.ts';

/** A duration string, parsed to milliseconds. YAML's bare `0` is accepted too. */
const duration = () =>
  z
    .union([z.string().regex(DURATION_PATTERN, DURATION_HINT), z.literal(0)], { error: DURATION_HINT })
    .transform((text) => (typeof text === 'number' ? 0 : (parseDuration(text) ?? 0)));

const size = () => z.string({ error: SIZE_HINT }).regex(SIZE_PATTERN, SIZE_HINT).transform((text) => parseSize(text) ?? 0);

const LISTEN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const listen = (fallback: string) =>
  z
    .string()
    .refine((text) => {
      const match = LISTEN.exec(text);
      return match !== null && Number(match[2]) <= 65535;
    }, 'not host:port: use e.g. 127.0.0.1:15001 (port 0 picks a free port)')
    .prefault(fallback);

const httpUrl = () =>
  z.string().refine((text) => {
    if (!URL.canParse(text)) return false;
    const url = new URL(text);
    return url.protocol === 'http:' && (url.pathname === '/' || url.pathname === '') && !url.search;
  }, 'not an http:// origin: use e.g. http://127.0.0.1:8080 (no path)');

const count = (fallback: number, min = 0) => z.number().int().min(min).prefault(fallback);
const ms = (fallback: string) => duration().prefault(fallback);

const timeouts = z
  .strictObject({
    connect: ms('1s'),
    firstByte: ms('60s'),
    idle: ms('5m'),
    total: ms('0'),
  })
  .prefault({});

const RETRY_CONDITIONS = ['connect-failure', 'reset', 'timeout'] as const;
const retryOn = z.string().refine(
  (text) => (RETRY_CONDITIONS as readonly string[]).includes(text) || /^[1-5]\d\d$/.test(text),
  `must be one of ${RETRY_CONDITIONS.join(', ')} or an HTTP status such as "503"`,
);

/**
 * Retries (resilience/retry.ts). Whatever these say, a retry is sent only when it is safe: connect
 * failures for any method; other failures only for idempotent methods or requests carrying
 * `Idempotency-Key`; never once response bytes reached the client; never into an open breaker.
 */
const retriesObject = (maxRetries: number) =>
  z.strictObject({
    /** Retries after the first attempt; 0 = off. */
    maxRetries: count(maxRetries),
    /** Time to the response head allowed to each attempt; 0 = none (the upstream's timeouts apply). */
    perTryTimeout: ms('0'),
    /** Full-jitter exponential backoff: a random wait up to min(max, base x 2^retry). */
    backoff: z.strictObject({ base: ms('25ms'), max: ms('250ms') }).prefault({}),
    retryOn: z.array(retryOn).prefault(['connect-failure', 'reset', '502', '503', '504']),
    /** Retries stay within ratio x requests + minPerSecond per second, over `window` (Linkerd's budget). */
    budget: z
      .strictObject({
        ratio: z.number().min(0).max(1).prefault(0.2),
        minPerSecond: count(10),
        window: ms('10s'),
      })
      .prefault({}),
    /** Request bodies up to this size are kept for replay; larger ones are forwarded, not retried. */
    maxBodyBytes: size().prefault('64KiB'),
    /** A `Retry-After` up to this long is waited for; an answer asking for longer is not retried. */
    maxRetryAfter: ms('1s'),
  });
const retries = retriesObject(2).prefault({});

const BREAKER_FAILURES = ['connect-failure', 'reset', 'timeout', '5xx'] as const;
const failureOn = z.string().refine(
  (text) => (BREAKER_FAILURES as readonly string[]).includes(text) || /^5\d\d$/.test(text),
  `must be one of ${BREAKER_FAILURES.join(', ')} or a 5xx status such as "503"`,
);

/** A circuit breaker (resilience/breaker.ts, opossum). */
const circuitBreakerObject = (enabled: boolean) =>
  z.strictObject({
    enabled: z.boolean().prefault(enabled),
    /** Opens when more than this share of the counted attempts in the window failed... */
    errorThresholdPercentage: z.number().min(1).max(100).prefault(50),
    /** ...and the window holds at least this many counted attempts. */
    volumeThreshold: count(20),
    /** The rolling window (10 buckets). */
    window: ms('10s'),
    /** Open for this long, then half-open: one probe decides. */
    resetTimeout: ms('30s'),
    /** What counts as a failure (4xx, client aborts and meshlet's own refusals never do). */
    failureOn: z.array(failureOn).prefault([...BREAKER_FAILURES]),
  });
const circuitBreaker = circuitBreakerObject(true).prefault({});

/**
 * How an upstream's endpoints share its traffic. `p2c-ewma` (Linkerd's default): of two endpoints
 * drawn at random, the one with the lower latency × (requests in flight + 1) gets the request;
 * `round-robin`: each in turn. `ewmaDecay`: how long a latency is remembered (the average's time span).
 */
const loadBalancer = z
  .strictObject({
    policy: z.enum(['p2c-ewma', 'round-robin']).prefault('p2c-ewma'),
    ewmaDecay: duration().refine((value) => value > 0, 'must be more than 0').prefault('10s'),
  })
  .prefault({});

/**
 * Passive outlier detection (Envoy's consecutive 5xx): an endpoint that fails `consecutiveFailures`
 * attempts in a row (no connection, reset, timeout, 5xx; 0 = off) leaves load balancing for
 * `baseEjectionTime` × the times it was ejected in a row, at most `maxEjectionTime`, then comes back
 * on its own. At most `maxEjectedPercent` of the endpoints are out at once, yet always one (with two
 * or more), and never the last one in service.
 */
const outlierDetection = z
  .strictObject({
    consecutiveFailures: count(5),
    baseEjectionTime: ms('30s'),
    maxEjectionTime: ms('5m'),
    maxEjectedPercent: z.number().min(0).max(100).prefault(50),
  })
  .prefault({});

/**
 * Protections of one listener against abusive or overwhelming clients. `sourceShare` differs: inbound
 * serves many agents, outbound one (the primary), whom a share would only hold back.
 */
const limits = (sourceShare: number) => z
  .strictObject({
    /** Request line plus headers; larger requests get 431. */
    maxHeaderBytes: size().prefault('16KiB'),
    /** A client must finish sending the request head within this time (slowloris). */
    headersTimeout: ms('10s'),
    /**
     * Client connections open on this listener; more are closed as they arrive (and counted). `auto`:
     * a quarter of the descriptors left after a reserve for the admin listener, probes and logs, so
     * that with each client connection holding an upstream one, the two proxy listeners together can
     * never take the descriptors the rest of meshlet needs (connection-limit.ts).
     */
    maxConnections: z.union([z.literal('auto'), z.number().int().min(1)]).prefault('auto'),
    /** Requests in flight on this listener; more get 503 `overloaded`. */
    maxConcurrentRequests: count(2048, 1),
    /**
     * Once half of `maxConcurrentRequests` are taken, the share of them one source (client address;
     * with trustForwardedHeaders, the client the forwarded headers name) may hold; its requests beyond
     * get 429 `source_limited`, so one caller cannot lock every other out. 1 = no per-source limit.
     */
    maxSourceShare: z.number().gt(0).max(1).prefault(sourceShare),
    /**
     * A request body must keep arriving at `bytesPerSecond` or better once `grace` has passed (the
     * allowance grows with what arrived, as mod_reqtimeout's MinRate); slower ones are cut with 408
     * `request_timeout` and the upstream request is cancelled. 0 bytes per second turns it off.
     * Response streams are not concerned: a model may pause for minutes between tokens.
     */
    minUploadRate: z.strictObject({ grace: ms('20s'), bytesPerSecond: count(500) }).prefault({}),
    /** Tunnels (WebSocket upgrades) open on this listener; more get 503 `overloaded`. */
    maxTunnels: count(1024, 1),
    /** After one side of a tunnel half-closes (FIN), how long the other side has to finish. */
    tunnelHalfCloseTimeout: ms('5s'),
  })
  .prefault({});

/**
 * The `Upgrade` protocols this listener tunnels: `websocket`, or none (`[]`). A request asking for any
 * other (h2c, say) is proxied as an ordinary HTTP/1.1 request without its `Upgrade`, as a server that
 * does not switch would answer it: tunnelling arbitrary upgrades would let later requests inside the
 * tunnel bypass every per-request rule (h2c smuggling).
 */
const upgradeTypes = z
  .array(z.literal('websocket', { error: 'only websocket can be tunnelled; other upgrades are proxied as ordinary requests' }))
  .prefault(['websocket']);

/** What `defaults` sets for every upstream, and each upstream may override part by part. */
/** Per upstream, beside the listener's own limits. */
const upstreamLimits = z
  .strictObject({
    /** Requests to this upstream in flight at once (like Envoy's max_requests); more get 503 overloaded. */
    maxConcurrentRequests: count(1024, 1),
  })
  .prefault({});

export const policySchema = z.strictObject({ timeouts, retries, circuitBreaker, loadBalancer, outlierDetection, limits: upstreamLimits });

const upstream = z.strictObject({
  /** Static endpoints; without them the name is resolved in the registry. */
  endpoints: z.array(httpUrl()).min(1).optional(),
  timeouts: timeouts.optional(),
  retries: retries.optional(),
  circuitBreaker: circuitBreaker.optional(),
  loadBalancer: loadBalancer.optional(),
  outlierDetection: outlierDetection.optional(),
  limits: upstreamLimits.optional(),
});

/** `host` or `host:port`, IPv6 in brackets. */
const ADVERTISE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

const UPSTREAM_NAME = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

export const configSchema = z.strictObject({
  service: z.strictObject({
    name: z.string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') }).regex(
      UPSTREAM_NAME,
      'must be a lowercase DNS-style name such as planner',
    ),
    /** How long in-flight requests may take to finish after SIGTERM. */
    drainTimeout: ms('30s'),
    /**
     * After SIGTERM, how long meshlet keeps serving (readiness failing, every response with
     * `Connection: close`) before it stops accepting: load balancers take a few seconds to notice.
     */
    drainDelay: ms('5s'),
  }),
  inbound: z
    .strictObject({
      listen: listen('0.0.0.0:15006'),
      primary: httpUrl().prefault('http://127.0.0.1:8080'),
      timeouts,
      healthCheck: z
        .strictObject({
          path: z.string().startsWith('/', 'must start with /').prefault('/healthz'),
          interval: ms('5s'),
          timeout: ms('1s'),
          unhealthyThreshold: count(3, 1),
          healthyThreshold: count(1, 1),
        })
        .prefault({}),
      rateLimit: z.strictObject({ requestsPerSecond: count(0), burst: count(0) }).prefault({}),
      /** To the primary, a local process: no retries and no breaker unless asked for. */
      retries: retriesObject(0).prefault({}),
      circuitBreaker: circuitBreakerObject(false).prefault({}),
      limits: limits(0.25),
      /** Trust X-Forwarded-* sent by clients (only behind a trusted proxy). */
      trustForwardedHeaders: z.boolean().prefault(false),
      upgradeTypes,
    })
    .prefault({}),
  outbound: z
    .strictObject({
      listen: listen('127.0.0.1:15001'),
      limits: limits(1),
      trustForwardedHeaders: z.boolean().prefault(false),
      upgradeTypes,
    })
    .prefault({}),
  admin: z.strictObject({ listen: listen('127.0.0.1:15000') }).prefault({}),
  defaults: policySchema.prefault({}),
  upstreams: z
    .record(z.string().regex(UPSTREAM_NAME, 'upstream names must be lowercase DNS-style names'), upstream)
    .prefault({}),
  registry: z
    .strictObject({
      backend: z.enum(['static', 'sqlite', 'etcd']).prefault('static'),
      /** How long an instance outlives its last lease renewal (renewed every ttl/3). */
      ttl: duration().refine((ms) => ms >= 1000, 'must be at least 1s').prefault('10s'),
      /**
       * Where other sidecars reach this one's inbound listener: `host` or `host:port`. Default: the
       * inbound listener's address; a wildcard becomes 127.0.0.1 (sqlite) or this host's first
       * non-loopback IPv4 address (etcd).
       */
      advertise: z
        .string()
        .regex(ADVERTISE, 'must be host or host:port, e.g. 10.0.0.7 or 10.0.0.7:15006')
        .refine((text) => !/^(0\.0\.0\.0|\[?::\]?)(:|$)/.test(text), 'must be an address other hosts can connect to, not a wildcard')
        .optional(),
      sqlite: z
        .strictObject({
          path: z.string().prefault('.meshlet/registry.db'),
          /** How often the database is checked for instances that joined, changed or left. */
          pollInterval: duration().refine((ms) => ms > 0, 'must be more than 0').prefault('1s'),
        })
        .prefault({}),
      etcd: z
        .strictObject({
          endpoints: z.array(z.string()).min(1).prefault(['http://127.0.0.1:2379']),
          prefix: z.string().prefault('/meshlet/'),
        })
        .prefault({}),
    })
    .prefault({}),
  telemetry: z
    .strictObject({
      // Read-only (GET /metrics /healthz /readyz) for Prometheus and kubelet probes; mutations stay on admin.
      metrics: z.strictObject({ listen: listen('0.0.0.0:15090') }).prefault({}),
      accessLog: z
        .strictObject({
          enabled: z.boolean().prefault(true),
          // The share of successful requests logged (0..1); failures and local replies always are.
          sampleSuccesses: z.number().min(0).max(1).prefault(1),
        })
        .prefault({}),
      // Everything else about tracing (endpoint, sampler, service name) is the standard OTEL_* variables'.
      tracing: z.strictObject({ enabled: z.boolean().prefault(false) }).prefault({}),
      /**
       * Each upstream's recent attempt outcomes (time, success / failure / refused by the breaker,
       * latency), in memory, for `meshlet breakers what-if`: the last `maxAge` or `maxEntries`,
       * whichever is fewer (14 bytes each: 100,000 take 1.4 MB). `maxEntries: 0` keeps none;
       * `maxAge: 0` bounds by count only.
       */
      outcomeHistory: z
        .strictObject({ maxAge: ms('15m'), maxEntries: z.number().int().min(0).max(10_000_000).prefault(100_000) })
        .prefault({}),
    })
    .prefault({}),
});

/** The parsed config: every default filled, durations in ms, sizes in bytes. */
export type Config = z.output<typeof configSchema>;
export type Policy = z.output<typeof policySchema>;
export type Timeouts = Policy['timeouts'];
export type ListenerLimits = Config['inbound']['limits'];
/** An upstream with its policy resolved: `defaults` with the upstream's own overrides laid over. */
export type UpstreamConfig = Policy & { endpoints?: string[] | undefined };
/** The config the sidecar runs with. */
export type MeshletConfig = Omit<Config, 'upstreams'> & { upstreams: Record<string, UpstreamConfig> };
