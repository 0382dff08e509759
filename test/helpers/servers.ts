/**
 * Real servers on port 0 for tests, closed by the test's teardown.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';

export type Upstream = {
  server: Server;
  url: string;
  port: number;
  /** Every request the server received, in order. */
  requests: IncomingMessage[];
};

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** An HTTP server on 127.0.0.1:0 that records requests; default handler answers 200 "ok". */
export async function startUpstream(t: ExecutionContext, handler?: RequestHandler): Promise<Upstream> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    if (handler) handler(req, res);
    else if (req.url === '/healthz') res.end('healthy');
    else res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, port, requests };
}

/** A port on which nothing listens (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
