import type { AddressInfo, Server } from 'node:net';

/** Listen on `host:port` (`[::1]:0` style for IPv6; port 0 picks a free port). */
export async function listenOn(server: Server, hostPort: string): Promise<AddressInfo> {
  const colon = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(hostPort.slice(colon + 1));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}
