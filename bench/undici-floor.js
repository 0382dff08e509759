// @ts-check
/**
 * The floor for any undici-based Node proxy: the least code that forwards a request and streams the
 * response back (no timeouts, logs, metrics or header rules). What meshlet adds on top of this is its
 * own cost; what this adds over `direct` is Node's. Plain JavaScript, like meshlet's dist/, so that
 * memory compares code with code.
 *   node bench/undici-floor.js LISTEN_PORT TARGET_URL
 */
import { createServer } from 'node:http';
import { Pool } from 'undici';

const [port, target] = process.argv.slice(2);
const pool = new Pool(/** @type {string} */ (target), { pipelining: 1 });

/** @typedef {import('undici').Dispatcher.DispatchHandler} DispatchHandler */

/** @implements {DispatchHandler} */
class Relay {
  /** @param {import('node:http').ServerResponse} res */
  constructor(res) {
    this.res = res;
  }
  onRequestStart() {}
  /**
   * @param {unknown} _controller
   * @param {number} status
   * @param {Record<string, string | string[] | undefined>} headers
   */
  onResponseStart(_controller, status, headers) {
    /** @type {string[]} */
    const out = [];
    for (const name in headers) {
      const value = headers[name];
      if (name !== 'connection' && name !== 'keep-alive' && typeof value === 'string') out.push(name, value);
    }
    this.res.writeHead(status, out);
  }
  /** @param {unknown} _controller @param {Buffer} chunk */
  onResponseData(_controller, chunk) {
    this.res.write(chunk);
  }
  onResponseEnd() {
    this.res.end();
  }
  /** @param {unknown} _controller @param {Error} error */
  onResponseError(_controller, error) {
    this.res.destroy(error);
  }
}

createServer((req, res) => {
  pool.dispatch({ path: req.url ?? '/', method: req.method ?? 'GET', headers: req.rawHeaders, body: req.method === 'GET' ? null : req }, new Relay(res));
}).listen(Number(port), '127.0.0.1');
