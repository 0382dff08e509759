/**
 * A chaos upstream: a real HTTP server on 127.0.0.1 whose behaviour the test sets and changes at any
 * moment: answer, refuse connections, reset before or after the head, hang, drip, fail a share of
 * requests, and recover on command. It records what it received (count, paths, body hashes).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ExecutionContext } from 'ava';

export type ChaosBehaviour =
  | { kind: 'ok'; body?: string }
  | { kind: 'status'; status: number; headers?: Record<string, string> }
  /** Fail `percent` of requests (every 100/percent-th, deterministic) with `status`. */
  | { kind: 'fail-share'; percent: number; status: number }
  | { kind: 'reset-before-head' }
  | { kind: 'reset-after-head' }
  /** Head, a chunk and a malformed chunk in one write: the response breaks in the turn its head is read. */
  | { kind: 'malformed-with-head' }
  | { kind: 'hang' }
  /** Send the head, then one chunk every `everyMs`, `chunks` times. */
  | { kind: 'drip'; everyMs: number; chunks: number };

export type Received = { method: string; url: string; bodySha256: string; bodyBytes: number; headers: IncomingMessage['headers'] };

export class ChaosUpstream {
  behaviour: ChaosBehaviour = { kind: 'ok' };
  /** Behaviours for the next requests, one each, before `behaviour` applies again. */
  readonly queue: ChaosBehaviour[] = [];
  readonly received: Received[] = [];
  port = 0;
  private server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly hanging = new Set<ServerResponse>();
  private waiters: { count: number; resolve: () => void }[] = [];
  private served = 0;

  constructor() {
    this.server = this.newServer();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Refuse connections (the listening socket closes) until `recover()`. */
  async refuse(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server = this.newServer();
  }

  /** Listen again (on the same port) and answer 200. */
  async recover(behaviour: ChaosBehaviour = { kind: 'ok' }): Promise<void> {
    this.behaviour = behaviour;
    if (!this.server.listening) await this.start();
  }

  /** Answer the requests left hanging with 200 `released`. */
  releaseHanging(): void {
    for (const res of this.hanging) res.end('released');
    this.hanging.clear();
  }

  /** Resolves once `count` requests in all have arrived. */
  receivedAtLeast(count: number): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  async close(): Promise<void> {
    this.cutAll();
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private cutAll(): void {
    for (const socket of this.sockets) socket.destroy();
    this.hanging.clear();
  }

  private newServer(): Server {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    return server;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    req.on('end', () => {
      this.received.push({ method: req.method ?? '', url: req.url ?? '', bodySha256: hash.digest('hex'), bodyBytes: bytes, headers: req.headers });
      this.waiters = this.waiters.filter((w) => (this.received.length >= w.count ? (w.resolve(), false) : true));
      this.answer(req, res);
    });
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const b = this.queue.shift() ?? this.behaviour;
    this.served++;
    switch (b.kind) {
      case 'ok':
        res.end(b.body ?? 'ok');
        return;
      case 'status':
        res.writeHead(b.status, b.headers).end(`status ${b.status}`);
        return;
      case 'fail-share':
        if (this.served % Math.round(100 / b.percent) === 0) res.writeHead(b.status).end('failed');
        else res.end('ok');
        return;
      case 'reset-before-head':
        req.socket.resetAndDestroy();
        return;
      case 'reset-after-head':
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
        setTimeout(() => req.socket.resetAndDestroy(), 20);
        return;
      case 'malformed-with-head':
        req.socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\nnot-a-size\r\n');
        return;
      case 'hang':
        this.hanging.add(res);
        return;
      case 'drip': {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let sent = 0;
        const timer = setInterval(() => {
          res.write(`data: ${sent}\n\n`);
          if (++sent === b.chunks) {
            clearInterval(timer);
            res.end();
          }
        }, b.everyMs);
        res.on('close', () => clearInterval(timer));
        return;
      }
    }
  }
}

/** A chaos upstream on a free port, closed when the test ends. */
export async function startChaos(t: ExecutionContext, behaviour?: ChaosBehaviour): Promise<ChaosUpstream> {
  const chaos = await new ChaosUpstream().start();
  if (behaviour !== undefined) chaos.behaviour = behaviour;
  t.teardown(() => chaos.close());
  return chaos;
}
