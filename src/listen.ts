import type { AddressInfo, Server } from 'node:net';

/** A listener that could not start, said in one line an operator can act on (no stack trace). */
export class ListenError extends Error {
  override readonly name = 'ListenError';
}

const REASONS: Record<string, string> = {
  EADDRINUSE: 'the address is already in use (another process listens there)',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'no interface of this host has that address',
};

/** Listen on `host:port` (`[::1]:0` style for IPv6; port 0 picks a free port); `name` is for errors. */
export async function listenOn(server: Server, hostPort: string, name = 'admin'): Promise<AddressInfo> {
  const colon = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(hostPort.slice(colon + 1));
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      const reason = REASONS[error.code ?? ''] ?? error.message;
      reject(new ListenError(`cannot listen on ${hostPort} (${name}): ${reason}`, { cause: error }));
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}
