/**
 * The soak's clients: each scenario is one client's visit to one of meshlet's listeners, and ends in
 * one outcome. `ok` is a complete, correct exchange; `aborted` is a client that went away on purpose
 * (the point of the scenario); `failed` is anything else, with a reason.
 *
 * Every scenario is bounded by OPERATION_TIMEOUT_MS, so that one stuck exchange cannot hold the soak
 * past its duration; a stuck exchange is a failure, and the report says so.
 */
import { Agent, request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { WebSocket } from 'ws';
import { BIG_BODY, MIB, SMALL_BODY, STREAM_CHUNK, STREAM_CHUNKS, type Primary } from './primary.ts';

/** The longest any one exchange may take; longer is a failure. */
export const OPERATION_TIMEOUT_MS = 20_000;

/** One of meshlet's listeners, and the Host header that routes to the primary through it. */
export type Target = { listener: 'inbound' | 'outbound'; host: string; port: number; hostHeader: string };

export type Outcome = { kind: 'ok' } | { kind: 'aborted' } | { kind: 'failed'; reason: string };

export type Clients = {
  primary: Primary;
  /** A keep-alive agent per listener, shared by the scenarios that reuse connections. */
  agents: Map<Target['listener'], Agent>;
};

type Scenario = { name: string; weight: number; run: (target: Target, clients: Clients) => Promise<Outcome> };

const ok: Outcome = { kind: 'ok' };
const aborted: Outcome = { kind: 'aborted' };
const failed = (reason: string): Outcome => ({ kind: 'failed', reason });

/** Weights: mostly ordinary requests, with enough of each hostile shape to find a leak in 2 minutes. */
export const SCENARIOS: readonly Scenario[] = [
  { name: 'keep-alive GET', weight: 30, run: (target, clients) => expect(target, { path: '/small', agent: clients.agents.get(target.listener)! }, Buffer.from(SMALL_BODY)) },
  { name: 'new-connection GET', weight: 15, run: (target) => expect(target, { path: '/small', agent: false }, Buffer.from(SMALL_BODY)) },
  { name: '1 MiB upload (echoed)', weight: 8, run: (target, clients) => expect(target, { method: 'POST', path: '/echo', agent: clients.agents.get(target.listener)!, body: BIG_BODY }, BIG_BODY) },
  { name: '1 MiB download', weight: 8, run: (target, clients) => expect(target, { path: '/big', agent: clients.agents.get(target.listener)! }, BIG_BODY) },
  { name: 'slow stream, read whole', weight: 5, run: (target, clients) => expect(target, { path: '/stream', agent: clients.agents.get(target.listener)! }, Buffer.from(STREAM_CHUNK.repeat(STREAM_CHUNKS))) },
  { name: 'reset mid-request', weight: 10, run: abortMidRequest },
  { name: 'reset mid-response', weight: 10, run: abortMidResponse },
  { name: 'WebSocket churn', weight: 10, run: webSocketSession },
];

const TOTAL_WEIGHT = SCENARIOS.reduce((sum, s) => sum + s.weight, 0);

export function pickScenario(): Scenario {
  let roll = Math.random() * TOTAL_WEIGHT;
  for (const scenario of SCENARIOS) {
    roll -= scenario.weight;
    if (roll < 0) return scenario;
  }
  return SCENARIOS[0]!;
}

type Exchange = { method?: string; path: string; agent: Agent | false; body?: Buffer };

/** One request; `ok` when the answer is 200 with exactly `expected` as its body. */
async function expect(target: Target, exchange: Exchange, expected: Buffer): Promise<Outcome> {
  try {
    const { status, body } = await send(target, exchange);
    if (status !== 200) return failed(`${exchange.path}: status ${status}`);
    if (!body.equals(expected)) return failed(`${exchange.path}: body of ${body.length} bytes differs from the expected ${expected.length}`);
    return ok;
  } catch (error) {
    return failed(`${exchange.path}: ${describe(error)} ${(error as { phase?: string }).phase ?? ''}`);
  }
}

function send(target: Target, exchange: Exchange): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { host: target.hostHeader };
    // `agent: false` is a fresh connection for this request alone; say so, so meshlet closes it too.
    if (exchange.agent === false) headers.connection = 'close';
    if (exchange.body) headers['content-length'] = exchange.body.length;
    const req = request({
      host: target.host,
      port: target.port,
      method: exchange.method ?? 'GET',
      path: exchange.path,
      agent: exchange.agent,
      headers,
      signal: AbortSignal.timeout(OPERATION_TIMEOUT_MS),
    });
    let received = -1;
    // Where it failed tells a keep-alive race (a reused connection closed as the request left, before
    // any answer) from a response cut in the middle.
    const fail = (error: Error) => {
      const connection = req.reusedSocket ? 'a reused connection' : 'a new connection';
      const phase = received < 0 ? `before the response head, on ${connection}` : `after ${received} body bytes, on ${connection}`;
      reject(Object.assign(error, { phase }));
    };
    req.on('error', fail);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      received = 0;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
      });
      res.on('error', fail);
      // 'end' only for a complete body; a connection cut mid-body is 'aborted' and an error.
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.end(exchange.body);
  });
}

/**
 * A client that sends a request head announcing 1 MiB, part of the body, then resets the connection.
 * Half wait until the request has reached the primary first, so that meshlet has an upstream request
 * in flight to cancel; the other half reset as soon as their bytes are written, wherever meshlet is.
 */
function abortMidRequest(target: Target, clients: Clients): Promise<Outcome> {
  const waitForPrimary = Math.random() < 0.5;
  const id = `abort-${Math.random().toString(36).slice(2)}`;
  const arrived = waitForPrimary ? clients.primary.arrived(id) : null;
  return new Promise<Outcome>((resolve) => {
    const socket = connect(target.port, target.host);
    const finish = (outcome: Outcome) => {
      socket.destroyed || socket.resetAndDestroy();
      resolve(outcome);
    };
    socket.setTimeout(OPERATION_TIMEOUT_MS, () => finish(failed('reset mid-request: the request never reached the primary')));
    socket.on('error', (error) => finish(failed(`reset mid-request: ${describe(error)}`)));
    // Any answer before the reset means meshlet refused the request: not what this scenario is about.
    socket.on('data', (data: Buffer) => finish(failed(`reset mid-request: answered ${data.subarray(0, 12).toString()}`)));
    socket.on('connect', () => {
      socket.write(`POST /sink HTTP/1.1\r\nhost: ${target.hostHeader}\r\ncontent-length: ${MIB}\r\nx-soak-id: ${id}\r\n\r\n`);
      const partial = BIG_BODY.subarray(0, 64 * 1024 * (1 + Math.floor(Math.random() * 4)));
      socket.write(partial, () => {
        if (arrived === null) finish(aborted);
        else void arrived.then(() => finish(aborted));
      });
    });
  });
}

/** A client that starts reading a response (a slow stream, or 1 MiB), then resets the connection. */
function abortMidResponse(target: Target): Promise<Outcome> {
  const path = Math.random() < 0.5 ? '/stream' : '/big';
  return new Promise<Outcome>((resolve) => {
    const req = request({
      host: target.host,
      port: target.port,
      path,
      agent: false,
      headers: { host: target.hostHeader },
      signal: AbortSignal.timeout(OPERATION_TIMEOUT_MS),
    });
    let done = false;
    const finish = (outcome: Outcome) => {
      if (!done) resolve(outcome);
      done = true;
    };
    req.on('error', (error) => finish(failed(`reset mid-response ${path}: ${describe(error)}`)));
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        finish(failed(`reset mid-response ${path}: status ${res.statusCode}`));
        res.resume();
        return;
      }
      res.on('error', () => {}); // our own reset, below
      res.once('data', () => {
        finish(aborted);
        res.socket.resetAndDestroy();
      });
    });
    req.end();
  });
}

/**
 * A WebSocket session: connect, exchange a text and a 16 KiB binary message, then close properly
 * (three in four) or drop the connection without a close frame (one in four).
 */
function webSocketSession(target: Target): Promise<Outcome> {
  const abrupt = Math.random() < 0.25;
  return new Promise<Outcome>((resolve) => {
    const ws = new WebSocket(`ws://${target.host}:${target.port}/ws`, { headers: { host: target.hostHeader } });
    let done = false;
    const finish = (outcome: Outcome) => {
      clearTimeout(timer);
      if (!done) resolve(outcome);
      done = true;
    };
    const timer = setTimeout(() => {
      finish(failed('WebSocket: session did not finish in time'));
      ws.terminate();
    }, OPERATION_TIMEOUT_MS);
    const binary = BIG_BODY.subarray(0, 16 * 1024);
    let echoes = 0;
    ws.on('error', (error) => finish(failed(`WebSocket: ${describe(error)}`)));
    ws.on('open', () => {
      ws.send('hello');
      ws.send(binary);
    });
    ws.on('message', (data: Buffer, isBinary) => {
      const expected = isBinary ? binary : Buffer.from('hello');
      if (!data.equals(expected)) return finish(failed('WebSocket: echo differs'));
      if (++echoes < 2) return;
      if (abrupt) {
        ws.terminate();
        finish(aborted);
      } else {
        ws.close(1000, 'done');
      }
    });
    ws.on('close', (code) => finish(code === 1000 ? ok : failed(`WebSocket: closed with ${code}`)));
  });
}

function describe(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  return code ?? message ?? String(error);
}
