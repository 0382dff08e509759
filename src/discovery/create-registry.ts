/**
 * The backend `registry.backend` names. Each is imported only when chosen: etcd's gRPC client costs
 * megabytes of memory that a sidecar on the static or sqlite backend should not pay for.
 */
import type { MeshletConfig } from '../config/schema.ts';
import type { Registry, RegistryListener } from './registry.ts';

export async function createRegistry(config: MeshletConfig['registry'], listener: RegistryListener): Promise<Registry> {
  switch (config.backend) {
    case 'sqlite': {
      const { SqliteRegistry } = await import('./sqlite-registry.ts');
      return new SqliteRegistry({ path: config.sqlite.path, ttlMs: config.ttl, pollMs: config.sqlite.pollInterval }, listener);
    }
    case 'etcd': {
      const { EtcdRegistry } = await import('./etcd-registry.ts');
      return new EtcdRegistry({ endpoints: config.etcd.endpoints, prefix: config.etcd.prefix, ttlMs: config.ttl }, listener);
    }
    case 'static': {
      const { StaticRegistry } = await import('./static-registry.ts');
      return new StaticRegistry(listener);
    }
  }
}
