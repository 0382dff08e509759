/**
 * The soak's primary agent: a node:http server with the shapes of traffic an agent serves, and a
 * WebSocket echo. It runs in the soak's own process, on 127.0.0.1:0, behind both of meshlet's
 * listeners (inbound primary, and the outbound upstream `echo`).
 *
 *   GET  /small      a small JSON answer (the common case)
 *   GET  /big        1 MiB, known bytes, so the client can check every one
 *   GET  /stream     a slow chunked stream (a model's tokens): STREAM_CHUNKS chunks, one per tick
 *   POST /echo       the request body back, streamed (1 MiB uploads come back whole)
 *   POST /sink       reads the body and answers its length (the target of aborted uploads)
 *   GET  /healthz    200, for meshlet's health check of its primary
 *   upgrade /ws      WebSocket echo
 *
 * It counts what meshlet did to it (requests cut before their end, connections open) so that the
 * report can tell "meshlet cancelled the upstream request" from "meshlet held it open".
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';

export const MIB = 1024 * 1024;
/** 1 MiB of bytes that are not all alike, so a client can see a chunk out of place. */
export const BIG_BODY = Buffer.from(Array.from({ length: MIB }, (_, i) => (i * 31 + (i >> 10)) & 0xff));
export const SMALL_BODY = JSON.stringify({ answer: 'soak', tokens: 42 });
export const STREAM_CHUNK = 'data: {"token":"soak"}\n\n';
export const STREAM_CHUNKS = 20;
/** Between stream chunks: a 20-chunk stream lasts ~0.5 s, long enough to be cut in the middle. */
const STREAM_TICK_MS = 25;

export type Primary = {
  url: string;
  server: Server;
  /** Connections open to the primary now (meshlet's pooled upstream connections and tunnels). */
  openConnections: () => number;
  /** WebSocket sessions open now. */
  openWebSockets: () => number;
  /** Requests whose connection went away before the request or the response was complete. */
  cut: () => number;
  /** Resolves when a request carrying `x-soak-id: id` has reached the primary. */
  arrived: (id: string) => Promise<void>;
  /** Close the keep-alive connections that are idle now (meshlet's pool sees them close). */
  closeIdle: () => void;
  close: () => Promise<void>;
};

export async function startPrimary(): Promise<Primary> {
  const sockets = new Set<Socket>();
  const waiting = new Map<string, () => void>();
  let cut = 0;

  const server = createServer((req, res) => {
    const id = req.headers['x-soak-id'];
    if (typeof id === 'string') {
      waiting.get(id)?.();
      waiting.delete(id);
    }
    // A request or response that ends with its connection before it finished: meshlet passed on a
    // client's reset (what the abort scenarios expect), or something went wrong.
    res.on('close', () => {
      if (!res.writableFinished) cut++;
    });
    route(req, res);
  });
  server.keepAliveTimeout = 5_000; // Node's default, said out loud: meshlet's pool closes idle ones 2 s before, at 3 s
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  const wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', (ws) => {
    ws.on('error', () => {}); // a peer reset mid-frame: expected in the churn
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    openConnections: () => sockets.size,
    openWebSockets: () => wss.clients.size,
    cut: () => cut,
    arrived: (id) => new Promise((resolve) => waiting.set(id, resolve)),
    closeIdle: () => server.closeIdleConnections(),
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function route(req: IncomingMessage, res: ServerResponse): void {
  req.on('error', () => {}); // the client side reset mid-upload: the 'close' above counts it
  switch (`${req.method} ${req.url}`) {
    case 'GET /small':
    case 'GET /healthz':
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(SMALL_BODY) });
      res.end(SMALL_BODY);
      return;
    case 'GET /big':
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': MIB });
      res.end(BIG_BODY);
      return;
    case 'GET /stream':
      stream(res);
      return;
    case 'POST /echo':
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
      return;
    case 'POST /sink': {
      let length = 0;
      req.on('data', (chunk: Buffer) => (length += chunk.length));
      req.on('end', () => res.end(String(length)));
      return;
    }
    default:
      res.writeHead(404).end();
  }
}

/** Chunks at a steady tick, until all are sent or the response is gone. */
function stream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  let sent = 0;
  const timer = setInterval(() => {
    res.write(STREAM_CHUNK);
    if (++sent === STREAM_CHUNKS) {
      clearInterval(timer);
      res.end();
    }
  }, STREAM_TICK_MS);
  res.on('close', () => clearInterval(timer));
}
