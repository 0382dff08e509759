// @ts-check
/**
 * The benchmark's trace collector: takes OTLP/HTTP exports (`POST /v1/traces`), reads and discards
 * them, and answers 200 `{}` as a collector does. In a process of its own, so that its work is not
 * counted as meshlet's.
 *   node bench/otlp-sink.js PORT
 */
import { createServer } from 'node:http';

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2]), '127.0.0.1');
