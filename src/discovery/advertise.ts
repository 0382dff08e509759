/**
 * The address this sidecar registers: where other sidecars reach its inbound listener.
 *
 * `registry.advertise` says it outright (`10.0.0.7`, or `10.0.0.7:15006` when a NAT or a port mapping
 * changes the port). Otherwise it is the inbound listener's own address, except that a wildcard
 * (`0.0.0.0`, `::`) is not an address anyone can connect to: on one machine (sqlite) it becomes
 * 127.0.0.1; in a cluster (etcd) this host's first non-loopback IPv4 address, as a pod has one.
 */
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { RegistryBackend } from './registry.ts';

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

export function advertisedAddress(advertise: string | undefined, inbound: AddressInfo, backend: RegistryBackend): string {
  if (advertise !== undefined) {
    const hasPort = /:\d+$/.test(advertise) && (advertise.startsWith('[') || advertise.indexOf(':') === advertise.lastIndexOf(':'));
    return `http://${hasPort ? advertise : `${bracketed(advertise)}:${inbound.port}`}`;
  }
  let host = inbound.address;
  if (WILDCARDS.has(host)) host = backend === 'etcd' ? (firstExternalIPv4() ?? '127.0.0.1') : '127.0.0.1';
  return `http://${bracketed(host)}:${inbound.port}`;
}

function bracketed(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function firstExternalIPv4(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) return address.address;
  }
  return undefined;
}
