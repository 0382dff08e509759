/**
 * Wiring only: build the runtime from a config, start the listeners, and stop them in order.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Env } from './config/env.ts';
import type { MeshletConfig } from './config/schema.ts';
import { createAdminRoutes, readOnlyRoutes } from './admin/routes.ts';
import { PublishedCard } from './discovery/agent-card.ts';
import { Discovery } from './discovery/discovery.ts';
import { createAdminServer } from './admin/server.ts';
import { Drain } from './health/drain.ts';
import { PrimaryProbe } from './health/primary-probe.ts';
import { listenOn } from './listen.ts';
import { systemClock, type Clock } from './core/clock.ts';
import type { Runtime } from './core/runtime.ts';
import { ADMIN_MAX_CONNECTIONS, descriptorLimit } from './proxy/connection-limit.ts';
import { createInbound, type Inbound } from './proxy/inbound.ts';
import type { Listener } from './proxy/listener.ts';
import { createOutbound, type Outbound } from './proxy/outbound.ts';
import { ConfigReloads, type ConfigSource, type ReloadReport, type ReloadTrigger } from './reload.ts';
import { watchConfigFile } from './config/watch.ts';
import type { UpstreamTable } from './upstream/table.ts';
import type { Upstream } from './upstream/upstream.ts';
import { AccessLog } from './telemetry/access-log.ts';
import { LogWriter } from './telemetry/log-writer.ts';
import { Metrics } from './telemetry/metrics.ts';
import { Tracing } from './telemetry/tracing/tracing.ts';

export type SidecarOptions = {
  /** Where JSON logs go (default: stdout, through log-writer.ts). Tests pass a sink they own. */
  logDestination?: DestinationStream;
  /** Include Node process metrics in /metrics (default true). */
  processMetrics?: boolean;
  /** Time for every policy (default: the system clock). Tests pass a fake one. */
  clock?: Clock;
  /** Layers added innermost to every upstream's stack (tests, embedders). */
  extraLayers?: Runtime['extraLayers'];
  /** Where a reload reads the config from (the CLI: the config file). Without one, reloads fail. */
  configSource?: ConfigSource;
  /** The config file to watch: a change reloads (the CLI passes the file it started with). */
  watchFile?: string;
  /** Where tracing reads its OTEL_* variables (default: `process.env`). */
  env?: Env;
};

export type Readiness = { ready: boolean; reasons: string[] };

export class Sidecar {
  readonly runtime: Runtime;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly drain = new Drain();
  readonly inbound: Listener;
  readonly outbound: Listener;
  readonly admin: Server;
  /** `telemetry.metrics.listen`: GET /metrics /healthz /readyz only, for Prometheus and probes. */
  readonly metricsListener: Server;
  readonly upstreams: UpstreamTable;
  /** Reloads of the config, and where they stand (GET /config). */
  readonly reloads: ConfigReloads;
  readonly probe: PrimaryProbe;
  /** Registration of this sidecar and discovery of the others (discovery/discovery.ts). */
  readonly discovery: Discovery;
  addresses: { inbound: AddressInfo; outbound: AddressInfo; admin: AddressInfo; metrics: AddressInfo } | null = null;
  private stopping: Promise<void> | null = null;
  private readonly accessLog: AccessLog | null;
  /** null when tracing is off; its SDK is loaded by start(). */
  readonly tracing: Tracing | null;
  /** stdout's writer, unless a test passed its own destination. */
  private readonly logWriter: LogWriter | null;
  /** The config in force; a reload replaces it. */
  config: MeshletConfig;
  private readonly inboundParts: Inbound;
  private readonly outboundParts: Outbound;
  private readonly watchFile: string | undefined;
  private stopWatching: (() => void) | null = null;

  constructor(config: MeshletConfig, options: SidecarOptions = {}) {
    this.config = config;
    this.metrics = new Metrics({ serviceName: config.service.name, processMetrics: options.processMetrics });
    // Written synchronously like Node's own stdout (async fs writes measured ~10% slower): access lines
    // in batches, lifecycle events at once; never waiting for a full pipe (log-writer.ts).
    let destination = options.logDestination;
    this.logWriter = null;
    if (destination === undefined) {
      const dropped = this.metrics.logLinesDropped;
      destination = this.logWriter = new LogWriter(1, { onDropped: (kind, lines) => dropped.labels(kind).inc(lines) });
    }
    this.logger = pino({ base: { service: config.service.name }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
    const { accessLog } = config.telemetry;
    this.accessLog = accessLog.enabled ? new AccessLog(destination, config.service.name, accessLog) : null;
    this.tracing = Tracing.create({ config, env: options.env ?? process.env, metrics: this.metrics, logger: this.logger });
    this.runtime = {
      config,
      metrics: this.metrics,
      logger: this.logger,
      clock: options.clock ?? systemClock,
      accessLog: this.accessLog,
      drain: this.drain,
      descriptors: descriptorLimit(),
      tracing: this.tracing,
      extraLayers: options.extraLayers,
    };
    const card = new PublishedCard();
    this.inboundParts = createInbound(this.runtime, card);
    this.inbound = this.inboundParts.listener;
    this.outboundParts = createOutbound(this.runtime);
    this.outbound = this.outboundParts.listener;
    this.upstreams = this.outboundParts.upstreams;
    this.discovery = new Discovery(this.runtime, this.upstreams, card);
    this.reloads = new ConfigReloads(options.configSource ?? null, this, this.logger, this.metrics.configReloads);
    this.watchFile = options.watchFile;
    this.probe = new PrimaryProbe(config.inbound.primary, config.inbound.healthCheck, this.logger);
    this.probe.on('change', (healthy) => this.metrics.primaryHealthy.set(healthy ? 1 : 0));
    this.metrics.primaryHealthy.set(0);
    const adminRoutes = createAdminRoutes(this);
    this.admin = createAdminServer(adminRoutes);
    this.metricsListener = createAdminServer(readOnlyRoutes(adminRoutes));
    // Probes and scrapes need few connections; bounded so that nobody can take the proxy's descriptors.
    this.admin.maxConnections = this.metricsListener.maxConnections = ADMIN_MAX_CONNECTIONS;
  }

  /** Start listening (admin first, so /readyz can explain a slow start) and probing the primary. */
  async start(): Promise<this> {
    // Before any listener, so that the first request is traced.
    await this.tracing?.start();
    try {
      const admin = await listenOn(this.admin, this.config.admin.listen);
      const metrics = await listenOn(this.metricsListener, this.config.telemetry.metrics.listen, 'metrics');
      const inbound = await this.inbound.listen(this.config.inbound.listen);
      const outbound = await this.outbound.listen(this.config.outbound.listen);
      this.addresses = { inbound, outbound, admin, metrics };
    } catch (error) {
      await this.close();
      throw error;
    }
    this.probe.start();
    await this.discovery.start(this.addresses.inbound, this.probe);
    if (this.watchFile !== undefined) {
      const file = this.watchFile;
      this.stopWatching = watchConfigFile(
        file,
        () => void this.reload('file'),
        (error) => this.logger.warn({ err: error, file }, 'cannot watch the config file: reload with SIGHUP or POST /reload'),
      );
    }
    const { admin, metrics } = this.addresses;
    this.logger.info({ admin: `${admin.address}:${admin.port}`, metrics: `${metrics.address}:${metrics.port}` }, 'meshlet started');
    return this;
  }

  /** The primary as an upstream (a reload that changes its policy replaces it). */
  get primary(): Upstream {
    return this.inboundParts.primary;
  }

  /** Re-read the config and put what changed in force (reload.ts). */
  reload(trigger: ReloadTrigger): Promise<ReloadReport> {
    return this.reloads.reload(trigger);
  }

  /** Put a validated config in force: called by a reload, with the keys that changed. */
  apply(config: MeshletConfig, changed: readonly string[]): void {
    this.config = config;
    this.runtime.config = config;
    this.inboundParts.reconfigure(config, changed);
    this.outboundParts.reconfigure(config, changed);
  }

  readiness(): Readiness {
    const reasons: string[] = [];
    if (this.drain.announced) reasons.push('draining');
    if (this.addresses === null) reasons.push('listeners not started');
    if (!this.probe.healthy) reasons.push(`primary unhealthy: ${this.probe.lastFailure ?? 'failing health checks'}`);
    const registration = this.discovery.notReady();
    if (registration !== null) reasons.push(registration);
    return { ready: reasons.length === 0, reasons };
  }

  /**
   * Graceful stop (SIGTERM), in two phases (health/drain.ts): readiness fails at once while requests
   * are still served for `service.drainDelay`, with `Connection: close`; then the listeners stop
   * accepting, in-flight requests finish within `service.drainTimeout`, and everything closes.
   */
  shutdown(): Promise<void> {
    this.stopping ??= this.drainAndClose();
    return this.stopping;
  }

  private async drainAndClose(): Promise<void> {
    const started = performance.now();
    const { drainDelay, drainTimeout } = this.config.service;
    this.drain.announce();
    this.inbound.announceDrain();
    this.outbound.announceDrain();
    // Deregistered first (the lease revoked): callers stop picking this instance while it still serves.
    await this.discovery.deregister();
    if (drainDelay > 0) {
      this.logger.info({ delayMs: drainDelay }, 'not ready: still serving until load balancers have noticed');
      await new Promise((resolve) => setTimeout(resolve, drainDelay));
    }
    this.drain.begin();
    this.logger.info({ inFlight: this.inbound.active + this.outbound.active, timeoutMs: drainTimeout }, 'draining');
    await Promise.all([this.inbound.drain(drainTimeout), this.outbound.drain(drainTimeout)]);
    this.logger.info({ ms: Math.round(performance.now() - started) }, 'drained');
    await this.close();
  }

  /**
   * Write out the access-log lines held in the current batch and the lifecycle lines waiting for a full
   * stdout (blocking briefly): for an exit, including one that skips close().
   */
  flushLogs(): void {
    this.accessLog?.flush();
    this.logWriter?.flushSync();
  }

  /** Close everything at once. */
  async close(): Promise<void> {
    this.stopWatching?.();
    this.probe.stop();
    this.inbound.close();
    this.outbound.close();
    for (const server of [this.admin, this.metricsListener]) {
      server.close();
      server.closeAllConnections();
    }
    await Promise.all([this.primary.close(), this.upstreams.close(), this.discovery.close()]);
    this.accessLog?.close();
    await this.tracing?.shutdown();
    this.metrics.close();
    await new Promise<void>((resolve) => this.logger.flush(() => resolve()));
  }
}
