/**
 * A toy AI agent for the demo: an HTTP service that "thinks" and streams tokens.
 *
 *   node examples/agent.ts researcher PORT          answers /research, streams /stream (SSE)
 *   node examples/agent.ts planner PORT OUTBOUND    calls `researcher` by name through its sidecar
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { request } from 'undici';

const [role, portText, outbound] = process.argv.slice(2);

async function researcher(req: IncomingMessage, res: ServerResponse): Promise<void> {
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

/** The planner calls the researcher by name: Host `researcher`, sent to its own sidecar's outbound port. */
async function planner(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = req.url === '/plan/stream' ? '/stream' : '/research';
  const upstream = await request(`${outbound}${path}`, {
    method: path === '/stream' ? 'GET' : 'POST',
    // Passing on the traceparent it received keeps the researcher's work in the caller's trace.
    headers: { host: 'researcher', 'x-request-id': String(req.headers['x-request-id'] ?? ''), traceparent: req.headers.traceparent ?? '' },
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
