/**
 * The recording primary: a node:http server (strict parser) that records every request it receives
 * and every request it could not parse. A parse error here means meshlet forwarded malformed bytes.
 *
 * It answers in several ways, chosen from the request itself (so a replayed case is answered the same
 * way): a small body, chunks, a slow stream, a reset before the head, a reset mid-body, or the body's
 * length after reading it all; so the client's resets land while meshlet relays answers too.
 * Upgrades are recorded as requests; websocket ones are accepted (with `ws`) or refused.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { hashString } from './prng.ts';

export type Received = {
  requestId: string | undefined;
  method: string;
  url: string;
  hostHeaders: number;
  contentLength: boolean;
  transferEncoding: boolean;
  upgrade: boolean;
  /** Bytes of body read, or -1 while unread or when it never completed. */
  bodyBytes: number;
  receivedAt: number;
};

export type ParseError = { code: string; message: string; packet: string; at: number };

export type RecordingPrimary = {
  url: string;
  received: Received[];
  /** Parse errors (HPE_*) the primary's own parser raised: each one is a failure of meshlet. */
  parseErrors: ParseError[];
  /** Connections cut mid-message (the parser's "invalid EOF" at close): an aborted forward, allowed. */
  truncated: number;
  close: () => Promise<void>;
};

/** The health-check path meshlet probes; its requests are not cases. */
export const PROBE_PATH = '/__fuzz_probe';

type Answer = 'small' | 'chunked' | 'slow' | 'reset-before-head' | 'reset-mid-body' | 'read-body';
const ANSWERS: readonly Answer[] = ['small', 'small', 'chunked', 'slow', 'reset-before-head', 'reset-mid-body', 'read-body', 'read-body'];

export async function startRecordingPrimary(): Promise<RecordingPrimary> {
  const received: Received[] = [];
  const parseErrors: ParseError[] = [];
  let truncated = 0;
  const record = (req: IncomingMessage, upgrade: boolean): Received => {
    const names = req.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase());
    const id = req.headers['x-request-id'];
    const entry: Received = {
      requestId: typeof id === 'string' ? id : undefined,
      method: req.method ?? '',
      url: req.url ?? '',
      hostHeaders: names.filter((name) => name === 'host').length,
      contentLength: names.includes('content-length'),
      transferEncoding: names.includes('transfer-encoding'),
      upgrade,
      bodyBytes: -1,
      receivedAt: performance.now(),
    };
    received.push(entry);
    return entry;
  };

  const server = createServer(
    // Larger than meshlet's own 16 KiB limit: meshlet adds headers, and the primary's limit is not under test.
    { maxHeaderSize: 64 * 1024, requestTimeout: 0, keepAliveTimeout: 1000, insecureHTTPParser: false },
    (req, res) => {
      if (req.url === PROBE_PATH && req.headers['x-request-id'] === undefined) {
        res.end();
        return;
      }
      const entry = record(req, false);
      let bytes = 0;
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => (entry.bodyBytes = bytes));
      // The requests that check meshlet still works must not meet a deliberate reset.
      const how = entry.url === '/well-formed' ? 'small' : ANSWERS[hashString(entry.requestId ?? entry.url) % ANSWERS.length]!;
      answer(req, res, how, () => bytes);
    },
  );
  server.on('clientError', (error: Error & { code?: string; rawPacket?: Buffer }, socket: Duplex) => {
    if (error.code === 'HPE_INVALID_EOF_STATE') truncated++;
    else if (error.code?.startsWith('HPE_')) {
      parseErrors.push({ code: error.code, message: error.message, packet: error.rawPacket?.toString('latin1').slice(0, 400) ?? '', at: performance.now() });
    }
    socket.destroy();
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const entry = record(req, true);
    const key = req.headers['sec-websocket-key'];
    const accept = String(req.headers.upgrade).toLowerCase() === 'websocket' && typeof key === 'string' && hashString(entry.requestId ?? '') % 2 === 0;
    if (!accept) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => ws.terminate());
      ws.on('message', (data) => ws.send(data));
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    parseErrors,
    get truncated() {
      return truncated;
    },
    close: () => {
      wss.close();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function answer(req: IncomingMessage, res: ServerResponse, how: Answer, bodyBytes: () => number): void {
  res.on('error', () => {});
  switch (how) {
    case 'small':
      res.end('ok');
      return;
    case 'chunked':
      res.write('one,');
      res.write('two,');
      res.end('three');
      return;
    case 'slow': {
      // Five chunks 10 ms apart: long enough for a reset to land mid-stream.
      let sent = 0;
      const timer = setInterval(() => {
        if (res.destroyed || ++sent === 5) {
          clearInterval(timer);
          res.end(`chunk ${sent}`);
        } else res.write(`chunk ${sent},`);
      }, 10);
      return;
    }
    case 'reset-before-head':
      req.socket.destroy();
      return;
    case 'reset-mid-body':
      res.writeHead(200, { 'content-length': '100' });
      res.write('only ten..', () => req.socket.destroy());
      return;
    case 'read-body':
      req.on('end', () => res.end(`read ${bodyBytes()}`));
      req.on('error', () => res.destroy());
      return;
  }
}
