// prom-client ships no types for its individual default collectors (see process-metrics.ts).
declare module 'prom-client/lib/metrics/*.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of default metrics, as collectDefaultMetrics does. */
  const register: (registry: Registry, config: { prefix?: string }) => void;
  export default register;
}
