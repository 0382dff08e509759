// @ts-check
/**
 * The benchmark's upstream: a keep-alive HTTP server answering a small JSON body. Plain JavaScript;
 * a fresh one also stands as "a bare node:http server" in the memory comparison.
 *   node bench/upstream.js PORT
 */
import { createServer } from 'node:http';

const body = JSON.stringify({ ok: true, model: 'bench', tokens: 42 });
/** `/slow` answers after a second, like a model call: for measuring many requests held in flight. */
const server = createServer((req, res) => {
  if (req.url === '/slow') {
    setTimeout(() => res.end(body), 1000);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2]), '127.0.0.1');
