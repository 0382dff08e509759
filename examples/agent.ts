/**
 * A toy AI agent for the demo: an HTTP service that "thinks", streams tokens and describes itself in
 * an A2A agent card (/.well-known/agent-card.json), which its meshlet publishes with its registration.
 *
 *   node examples/agent.ts researcher PORT INSTANCE    answers /research, streams /stream (SSE);
 *                                                      POST /flaky?every=3 makes every 3rd /research a
 *                                                      503 (every=0: none)
 *   node examples/agent.ts planner PORT OUTBOUND       calls `researcher` by name, and `summarize.skill`
 *                                                      by skill, through its sidecar (no addresses)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { request } from 'undici';

const [role, portText, third] = process.argv.slice(2);
const instance = role === 'researcher' ? (third ?? 'researcher') : 'planner';
const outbound = role === 'planner' ? third : undefined;

const CARDS: Record<string, object> = {
  researcher: {
    name: 'Researcher',
    description: 'Finds things out and sums them up',
    url: `http://127.0.0.1:${portText}/`,
    version: '1.0.0',
    capabilities: { streaming: true },
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['application/json'],
    skills: [
      { id: 'web-search', name: 'Web search', description: 'Searches the web', tags: ['search'] },
      { id: 'summarize', name: 'Summarize', description: 'Sums a text up', tags: ['text'] },
    ],
  },
  planner: {
    name: 'Planner',
    description: 'Plans work and hands it out',
    url: `http://127.0.0.1:${portText}/`,
    version: '1.0.0',
    capabilities: { streaming: true },
    skills: [{ id: 'plan', name: 'Plan', description: 'Breaks a goal into steps', tags: ['planning'] }],
  },
};

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
  if (req.url === '/research' || req.url === '/summarize') {
    await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 15)); // "thinking"
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ answeredBy: instance, finding: 'agents find each other through their sidecars', requestId: req.headers['x-request-id'] }));
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

/** Where each planner path goes: an agent by name, or any agent with a skill (Host `<skill>.skill`). */
const PLANNER_ROUTES: Record<string, { host: string; path: string; method: string }> = {
  '/plan': { host: 'researcher', path: '/research', method: 'POST' },
  '/plan/skill': { host: 'summarize.skill', path: '/summarize', method: 'POST' },
  '/plan/stream': { host: 'researcher', path: '/stream', method: 'GET' },
};

/**
 * The planner calls other agents by name, through its own sidecar's outbound port. Its POSTs are made
 * safe to retry with an Idempotency-Key (the request id).
 */
async function planner(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const route = PLANNER_ROUTES[req.url ?? ''];
  if (route === undefined) {
    res.statusCode = 404;
    return void res.end();
  }
  const upstream = await request(`${outbound}${route.path}`, {
    method: route.method,
    headers: {
      host: route.host, 'x-request-id': String(req.headers['x-request-id'] ?? ''), 'idempotency-key': String(req.headers['x-request-id'] ?? ''),
      // Passing on the traceparent it received keeps the callee's work in the caller's trace.
      traceparent: req.headers.traceparent ?? '',
    },
  });
  res.statusCode = upstream.statusCode;
  res.setHeader('content-type', String(upstream.headers['content-type'] ?? 'application/json'));
  // Pass on why the call failed when a sidecar answered itself.
  const meshletError = upstream.headers['x-meshlet-error'];
  if (meshletError) res.setHeader('x-meshlet-error', meshletError);
  for await (const chunk of upstream.body) res.write(chunk); // relay streams as they come
  res.end();
}

const server = createServer((req, res) => {
  if (req.url === '/healthz') return void res.end('ok');
  if (req.url === '/.well-known/agent-card.json') {
    res.setHeader('content-type', 'application/json');
    return void res.end(JSON.stringify(CARDS[role ?? ''] ?? {}));
  }
  const handler = role === 'planner' ? planner : researcher;
  handler(req, res).catch((error: unknown) => {
    if (!res.headersSent) res.writeHead(500);
    res.end(String(error));
  });
});
server.listen(Number(portText), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
