/**
 * A toy AI agent for the demo: an HTTP service that "thinks" and streams tokens.
 *
 *   node examples/agent.ts researcher PORT          answers /research, streams /stream (SSE);
 *                                                   POST /flaky?every=3 makes every 3rd /research a 503
 *                                                   (every=0: none)
 *   node examples/agent.ts planner PORT OUTBOUND    calls `researcher` by name through its sidecar
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { request } from 'undici';

const [role, portText, outbound] = process.argv.slice(2);

/** Every `flakyEvery`-th /research answers 503 (0: none): a model provider having a bad minute. */
let flakyEvery = 0;
let researched = 0;

async function researcher(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.url?.startsWith('/flaky')) {
    flakyEvery = Number(new URL(req.url, 'http://agent').searchParams.get('every') ?? 0);
    res.end();
    return;
  }
  if (req.url === '/research' && flakyEvery > 0 && ++researched % flakyEvery === 0) {
    res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"the model is overloaded"}');
    return;
  }
  if (req.url === '/research') {
    await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 15)); // "thinking"
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ finding: 'agents talk through sidecars', requestId: req.headers['x-request-id'] }));
    return;
  }
  if (req.url === '/stream') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const token of ['Sidecars', ' keep', ' agents', ' honest', '.']) {
      res.write(`data: ${JSON.stringify({ token })}\n\n`);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    res.end('data: [DONE]\n\n');
    return;
  }
  res.statusCode = 404;
  res.end();
}

/**
 * The planner calls the researcher by name: Host `researcher`, sent to its own sidecar's outbound port.
 * Its research call is a POST made safe to retry with an Idempotency-Key (the request id).
 */
async function planner(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = req.url === '/plan/stream' ? '/stream' : '/research';
  const upstream = await request(`${outbound}${path}`, {
    method: path === '/stream' ? 'GET' : 'POST',
    headers: { host: 'researcher', 'x-request-id': String(req.headers['x-request-id'] ?? ''), 'idempotency-key': String(req.headers['x-request-id'] ?? '') },
  });
  res.statusCode = upstream.statusCode;
  res.setHeader('content-type', String(upstream.headers['content-type'] ?? 'application/json'));
  // Pass on why the call failed when the researcher's sidecar answered itself.
  const meshletError = upstream.headers['x-meshlet-error'];
  if (meshletError) res.setHeader('x-meshlet-error', meshletError);
  for await (const chunk of upstream.body) res.write(chunk); // relay streams as they come
  res.end();
}

const server = createServer((req, res) => {
  if (req.url === '/healthz') return void res.end('ok');
  const handler = role === 'planner' ? planner : researcher;
  handler(req, res).catch((error: unknown) => {
    if (!res.headersSent) res.writeHead(500);
    res.end(String(error));
  });
});
server.listen(Number(portText), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
