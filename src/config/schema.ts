/**
 * The config schema: the single source of truth for validation, defaults, TypeScript types
 * (`Config` below) and the JSON Schema in `config/meshlet.schema.json`.
 *
 * Every object is strict (unknown keys are errors) and every field but `service.name` has a default.
 * Durations and sizes are strings in YAML and numbers (milliseconds, bytes) once parsed.
 */
import { z } from 'zod';
import { DURATION_PATTERN, SIZE_PATTERN, parseDuration, parseSize } from './units.ts';

const DURATION_HINT = 'must be a duration such as 250ms, 10s, 5m or 0';
const SIZE_HINT = 'must be a size such as 512B, 64KiB or 1MiB';

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
    }, 'must be host:port, e.g. 127.0.0.1:15001 (port 0 picks a free port)')
    .prefault(fallback);

const httpUrl = () =>
  z.string().refine((text) => {
    if (!URL.canParse(text)) return false;
    const url = new URL(text);
    return url.protocol === 'http:' && (url.pathname === '/' || url.pathname === '') && !url.search;
  }, 'must be an http:// origin such as http://127.0.0.1:8080 (no path)');

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

const retries = z
  .strictObject({
    maxRetries: count(2),
    perTryTimeout: ms('0'),
    backoff: z.strictObject({ base: ms('25ms'), max: ms('250ms') }).prefault({}),
    retryOn: z.array(retryOn).prefault(['connect-failure', 'reset', '502', '503', '504']),
    budget: z
      .strictObject({
        ratio: z.number().min(0).max(1).prefault(0.2),
        minPerSecond: count(10),
        window: ms('10s'),
      })
      .prefault({}),
    maxBodyBytes: size().prefault('64KiB'),
  })
  .prefault({});

const circuitBreaker = z
  .strictObject({
    errorThresholdPercentage: z.number().min(1).max(100).prefault(50),
    volumeThreshold: count(20),
    window: ms('10s'),
    resetTimeout: ms('30s'),
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
export const policySchema = z.strictObject({ timeouts, retries, circuitBreaker });

const upstream = z.strictObject({
  /** Static endpoints; without them the name is resolved in the registry. */
  endpoints: z.array(httpUrl()).min(1).optional(),
  timeouts: timeouts.optional(),
  retries: retries.optional(),
  circuitBreaker: circuitBreaker.optional(),
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
      accessLog: z.strictObject({ enabled: z.boolean().prefault(true) }).prefault({}),
      tracing: z.strictObject({ enabled: z.boolean().prefault(false) }).prefault({}),
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
