/**
 * Real servers on port 0 for tests, closed by the test's teardown.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { spawn } from 'node:child_process';
import { connect, type AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';

export type Upstream = {
  server: Server;
  url: string;
  port: number;
  /** Every request the server received, in order, except health checks. */
  requests: IncomingMessage[];
  /** What GET /healthz answers; tests set it to fail the primary's health check. 0: never answers. */
  healthStatus: number;
  /** The first request for `url` the server received, already or when it arrives. */
  received: (url: string) => Promise<IncomingMessage>;
};

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * An HTTP server on 127.0.0.1:0 that records requests. GET /healthz answers `healthStatus`;
 * everything else goes to `handler`, by default 200 "ok".
 */
export async function startUpstream(t: ExecutionContext, handler?: RequestHandler): Promise<Upstream> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      if (upstream.healthStatus === 0) return; // hangs until the prober gives up
      res.statusCode = upstream.healthStatus;
      res.end();
      return;
    }
    requests.push(req);
    if (handler) handler(req, res);
    else res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  const received = async (url: string): Promise<IncomingMessage> => {
    for (;;) {
      const found = requests.find((r) => r.url === url);
      if (found) return found;
      await once(server, 'request'); // the server's own handler, registered first, has recorded it
    }
  };
  const upstream: Upstream = { server, url: `http://127.0.0.1:${port}`, port, requests, healthStatus: 200, received };
  return upstream;
}

/** A port on which nothing listens (bound, then closed). */
export { freePort as closedPort } from '../../examples/free-port.ts';

/**
 * A port whose accept queue is full, so new connections hang in SYN (a stand-in for a black-holed
 * host: loopback cannot drop packets otherwise). Node always accepts, so python3 holds the socket.
 */
export async function blackholePort(t: ExecutionContext): Promise<number> {
  const script = 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)';
  const holder = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => holder.kill());
  const port = Number(await new Promise<string>((resolve) => holder.stdout!.once('data', (data) => resolve(String(data).trim()))));
  const filler = connect(port, '127.0.0.1'); // takes the one place in the queue
  filler.on('error', () => {});
  await new Promise((resolve) => filler.once('connect', resolve));
  t.teardown(() => filler.destroy());
  return port;
}
