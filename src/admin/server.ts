/**
 * The admin listener (loopback by default): health, readiness, metrics and introspection.
 * Reads are GET; every mutation is POST.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export type AdminReply = { status: number; body: unknown; contentType?: string };
export type AdminRoute = (req: IncomingMessage) => AdminReply | Promise<AdminReply>;

/** Routes by "METHOD /path"; a path ending in `/*` takes everything below it (`POST /breakers/*`). */
export type AdminRoutes = Readonly<Record<string, AdminRoute>>;

export function createAdminServer(routes: AdminRoutes): Server {
  return createServer((req, res) => void handle(routes, req, res));
}

async function handle(routes: AdminRoutes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const route = routes[`${req.method} ${path}`] ?? prefixRoute(routes, `${req.method} ${path}`);
  let reply: AdminReply;
  if (route === undefined) {
    const allowed = Object.keys(routes).filter((key) => key.endsWith(` ${path}`) || (key.endsWith('/*') && `${path}`.startsWith(key.slice(key.indexOf(' ') + 1, -1))));
    reply = allowed.length > 0
      ? { status: 405, body: { error: `use ${allowed.join(' or ')}` } }
      : { status: 404, body: { error: 'not found', endpoints: Object.keys(routes) } };
  } else {
    try {
      reply = await route(req);
    } catch (error) {
      reply = { status: 500, body: { error: (error as Error).message } };
    }
  }
  const text = typeof reply.body === 'string' ? reply.body : `${JSON.stringify(reply.body, null, 2)}\n`;
  res.writeHead(reply.status, {
    'content-type': reply.contentType ?? 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function prefixRoute(routes: AdminRoutes, key: string): AdminRoute | undefined {
  for (const [pattern, route] of Object.entries(routes)) {
    if (pattern.endsWith('/*') && key.startsWith(pattern.slice(0, -1)) && key.length > pattern.length - 1) return route;
  }
  return undefined;
}
