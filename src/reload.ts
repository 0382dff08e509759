/**
 * Hot reload (SIGHUP, POST /reload, a change of the config file): read and validate the file, then
 * put what changed in force in one step, or keep the config in force and say why.
 *
 * One reload runs at a time; triggers that arrive meanwhile run after it, in order. Requests in flight
 * finish under the config they started with: upstreams, the primary and the listeners' stages are
 * replaced, never changed under a request (Upstream.reconfigured, Listener.setPipeline). Keys that
 * need a restart (listener addresses, ...: config/diff.ts) are reported and keep their values.
 */
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { planReload } from './config/diff.ts';
import type { MeshletConfig } from './config/schema.ts';

export type ReloadTrigger = 'SIGHUP' | 'POST /reload' | 'file';

/** Reads and validates the config file: the new config, or every problem as `<key path>: <message>`. */
export type ConfigSource = () => Promise<{ ok: true; config: MeshletConfig } | { ok: false; problems: string[] }>;

export type ReloadReport = {
  result: 'success' | 'unchanged' | 'failure';
  trigger: ReloadTrigger;
  at: string;
  /** The config version in force after this reload (1 at start). */
  version: number;
  changed: string[];
  restartRequired: string[];
  problems: string[];
};

/** What a reload changes: the sidecar's config and the parts built from it. */
export interface Reconfigurable {
  readonly config: MeshletConfig;
  apply(config: MeshletConfig, changed: readonly string[]): void;
}

export class ConfigReloads {
  version = 1;
  readonly startedAt = new Date().toISOString();
  /** The latest reload, and the latest that failed (what GET /config shows). */
  last: ReloadReport | null = null;
  lastFailure: ReloadReport | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly source: ConfigSource | null;
  private readonly target: Reconfigurable;
  private readonly logger: Logger;
  private readonly counter: Counter<'result'>;

  constructor(source: ConfigSource | null, target: Reconfigurable, logger: Logger, counter: Counter<'result'>) {
    this.source = source;
    this.target = target;
    this.logger = logger;
    this.counter = counter;
  }

  /** Reload once the reloads asked for earlier are done. */
  reload(trigger: ReloadTrigger): Promise<ReloadReport> {
    const run = this.queue.then(() => this.reloadNow(trigger));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(trigger: ReloadTrigger): Promise<ReloadReport> {
    let loaded: Awaited<ReturnType<ConfigSource>>;
    if (this.source === null) {
      loaded = { ok: false, problems: ['meshlet was started without a config file: there is nothing to reload'] };
    } else {
      try {
        loaded = await this.source();
      } catch (error) {
        loaded = { ok: false, problems: [`the config could not be read: ${(error as Error).message}`] };
      }
    }
    if (!loaded.ok) return this.refused(trigger, loaded.problems);
    const plan = planReload(this.target.config, loaded.config);
    if (plan.changed.length > 0) {
      this.target.apply(plan.config, plan.changed);
      this.version++;
    }
    const report = this.report(plan.changed.length > 0 ? 'success' : 'unchanged', trigger, plan.changed, plan.restartRequired, []);
    this.counter.labels('success').inc();
    const fields = { trigger, version: this.version, changed: plan.changed, restartRequired: plan.restartRequired };
    this.logger.info(fields, plan.changed.length > 0 ? 'config reloaded' : 'config reloaded: nothing changed');
    if (plan.restartRequired.length > 0) {
      this.logger.warn({ keys: plan.restartRequired }, 'these config keys changed but take effect only after a restart; their old values stay in force');
    }
    return report;
  }

  private refused(trigger: ReloadTrigger, problems: string[]): ReloadReport {
    const report = this.report('failure', trigger, [], [], problems);
    this.lastFailure = report;
    this.counter.labels('failure').inc();
    this.logger.error({ trigger, version: this.version, problems }, 'config reload refused: the config in force stays');
    return report;
  }

  private report(result: ReloadReport['result'], trigger: ReloadTrigger, changed: string[], restartRequired: string[], problems: string[]): ReloadReport {
    const report = { result, trigger, at: new Date().toISOString(), version: this.version, changed, restartRequired, problems };
    this.last = report;
    return report;
  }
}
