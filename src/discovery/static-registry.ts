/**
 * `registry.backend: static` (the default): endpoints come from config alone. Nothing is published and
 * nothing is discovered, so the registry is always reachable and always empty.
 */
import type { Instance, Registry, RegistryListener } from './registry.ts';

export class StaticRegistry implements Registry {
  readonly backend = 'static' as const;
  private readonly listener: RegistryListener;

  constructor(listener: RegistryListener) {
    this.listener = listener;
  }

  watch(): void {
    this.listener.reachability(true, null);
    this.listener.snapshot([]);
  }

  register(_instance: Instance): Promise<void> {
    return Promise.resolve();
  }

  deregister(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
