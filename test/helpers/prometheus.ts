/**
 * A real Prometheus (Debian's `prometheus`, installed by .ci/run) on a free loopback port with its
 * data in a temporary directory, scraping the given targets every second; stopped in teardown.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { freePort } from '../../examples/free-port.ts';

export type Prometheus = {
  url: string;
  /** GET an API path (`/api/v1/...`) with query parameters; the `data` of a success, or throws with Prometheus's error. */
  api: <T>(path: string, params: Record<string, string>) => Promise<T>;
};

/** Start Prometheus scraping `targets` (`host:port`, job `meshlet`); resolves once it is ready for requests. */
export async function startPrometheus(t: ExecutionContext, targets: string[]): Promise<Prometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-prometheus-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: [{ job_name: 'meshlet', static_configs: [{ targets }] }],
  };
  await writeFile(join(dir, 'prometheus.yml'), JSON.stringify(config)); // JSON is YAML
  const port = await freePort();
  const child = spawn('prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--enable-feature=exemplar-storage',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.once('error', (error) => reject(new Error(`prometheus: ${error.message} (apt-get install prometheus; .ci/run does)`)));
    child.once('exit', (code) => reject(new Error(`prometheus exited with ${code} before it was ready:\n${log}`)));
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk;
      if (log.includes('Server is ready to receive web requests.')) resolve();
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const api = async <T>(path: string, params: Record<string, string>): Promise<T> => {
    const res = await request(`${url}${path}?${new URLSearchParams(params)}`);
    const body = (await res.body.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${body.error}`);
    return body.data;
  };
  return { url, api };
}
