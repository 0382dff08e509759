/**
 * The floor for any undici-based Node proxy: the least code that forwards a request and streams the
 * response back (no timeouts, logs, metrics or header rules). What meshlet adds on top of this is its
 * own cost; what this adds over `direct` is Node's.
 *   node bench/undici-floor.ts LISTEN_PORT TARGET_URL
 */
import { createServer, type ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';

const [port, target] = process.argv.slice(2);
const pool = new Pool(target!, { pipelining: 1 });

class Relay implements Dispatcher.DispatchHandler {
  private readonly res: ServerResponse;
  constructor(res: ServerResponse) {
    this.res = res;
  }
  onRequestStart(): void {}
  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    const out: string[] = [];
    for (const name in headers) {
      const value = headers[name];
      if (name !== 'connection' && name !== 'keep-alive' && typeof value === 'string') out.push(name, value);
    }
    this.res.writeHead(status, out);
  }
  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.res.write(chunk);
  }
  onResponseEnd(): void {
    this.res.end();
  }
  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.res.destroy(error);
  }
}

createServer((req, res) => {
  pool.dispatch({ path: req.url ?? '/', method: req.method ?? 'GET', headers: req.rawHeaders, body: req.method === 'GET' ? null : req }, new Relay(res));
}).listen(Number(port), '127.0.0.1');
