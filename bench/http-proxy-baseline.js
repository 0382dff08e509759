// @ts-check
/**
 * The baseline most Node users would write: node-http-proxy with a keep-alive agent. Plain JavaScript.
 *   node bench/http-proxy-baseline.js LISTEN_PORT TARGET_URL
 */
import { createServer, Agent } from 'node:http';
import httpProxy from 'http-proxy';

const [port, target] = process.argv.slice(2);
const proxy = httpProxy.createProxyServer({ target, agent: new Agent({ keepAlive: true, maxSockets: 1024 }) });
proxy.on('error', (_error, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});
createServer((req, res) => proxy.web(req, res)).listen(Number(port), '127.0.0.1');
