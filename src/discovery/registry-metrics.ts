/**
 * The registry's metrics, in the sidecar's own Prometheus registry: whether this sidecar is registered
 * (contract), whether the registry is reachable (while it is not, the last known endpoints serve), and
 * how many instances the discovery cache holds.
 */
import { Gauge, type Registry as PromRegistry } from 'prom-client';
import type { RegistryBackend } from './registry.ts';

export class RegistryMetrics {
  private readonly registeredGauge: Gauge<'backend'>;
  private readonly reachableGauge: Gauge<'backend'>;
  private readonly instancesGauge: Gauge<'backend'>;
  private readonly backend: RegistryBackend;

  constructor(registry: PromRegistry, backend: RegistryBackend, instances: () => number) {
    this.backend = backend;
    this.registeredGauge = new Gauge({
      name: 'meshlet_registry_registered',
      help: '1 while this sidecar is registered (its primary healthy, its lease held); always 0 with the static backend.',
      labelNames: ['backend'],
      registers: [registry],
    });
    this.reachableGauge = new Gauge({
      name: 'meshlet_registry_reachable',
      help: '1 while the registry answers; at 0, discovery serves the last endpoints it knew.',
      labelNames: ['backend'],
      registers: [registry],
    });
    this.instancesGauge = new Gauge({
      name: 'meshlet_registry_instances',
      help: 'Instances in the discovery cache (every registered sidecar this one knows of, itself included).',
      labelNames: ['backend'],
      registers: [registry],
      collect: () => this.instancesGauge.labels(backend).set(instances()),
    });
    this.registeredGauge.labels(backend).set(0);
    this.reachableGauge.labels(backend).set(0);
  }

  registered(yes: boolean): void {
    this.registeredGauge.labels(this.backend).set(yes ? 1 : 0);
  }

  reachable(yes: boolean): void {
    this.reachableGauge.labels(this.backend).set(yes ? 1 : 0);
  }
}
