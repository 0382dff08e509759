/**
 * `npm run bench`: meshlet against its peers, in one run, on loopback, with bounded load.
 *
 * Targets: the upstream directly; meshlet (default config, access log on, to /dev/null); a bare
 * node-http-proxy with a keep-alive agent; HAProxy when installed. For each: max throughput (wrk if
 * installed, else autocannon), latency at a fixed 1,000 requests/s (autocannon -R), and peak RSS.
 * meshlet alone also takes 1,000 concurrent connections for its RSS target. Results go to stdout and
 * bench/RESULTS.md with the machine description.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const ROOT = new URL('..', import.meta.url).pathname;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 64;
const FIXED_RATE = 1000;
const children: ChildProcess[] = [];

type Result = { name: string; rps: number; p50: number; p99: number; fixedP50: number; fixedP99: number; rssMB: number | null };

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function has(command: string): Promise<boolean> {
  return exec('sh', ['-c', `command -v ${command}`]).then(() => true, () => false);
}

function start(command: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
  children.push(child);
  return child;
}

async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`${url} never answered`);
}

/** Peak resident set of a process, in MB (VmHWM). */
async function peakRss(pid: number | undefined): Promise<number | null> {
  if (pid === undefined) return null;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : null;
}

/** Maximum throughput: wrk when installed, else autocannon. Latencies in ms. */
async function maxThroughput(url: string): Promise<{ rps: number; p50: number; p99: number }> {
  if (await has('wrk')) {
    const { stdout } = await exec('wrk', ['-t2', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', url]);
    const ms = (label: string) => {
      const match = new RegExp(`${label}%\\s+([\\d.]+)(us|ms|s)`).exec(stdout);
      if (!match) return NaN;
      const value = Number(match[1]);
      return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
    };
    return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]), p50: ms('50'), p99: ms('99') };
  }
  const report = await autocannon(['-c', String(CONNECTIONS), '-d', String(SECONDS), url]);
  return { rps: report.requests.average, p50: report.latency.p50, p99: report.latency.p99 };
}

type AutocannonReport = { requests: { average: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number };

async function autocannon(args: string[]): Promise<AutocannonReport> {
  const { stdout } = await exec(join(ROOT, 'node_modules/.bin/autocannon'), ['--json', ...args], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as AutocannonReport;
}

/** Latency at a fixed request rate, where "latency added by the proxy" is meaningful. */
async function fixedRate(url: string): Promise<{ p50: number; p99: number }> {
  const report = await autocannon(['-c', '20', '-R', String(FIXED_RATE), '-d', String(SECONDS), url]);
  return { p50: report.latency.p50, p99: report.latency.p99 };
}

async function measure(name: string, url: string, pid?: number): Promise<Result> {
  await waitFor(url);
  await autocannon(['-c', '10', '-d', '2', url]); // warm-up: JIT, pools
  const max = await maxThroughput(url);
  const fixed = await fixedRate(url);
  const result = { name, ...max, fixedP50: fixed.p50, fixedP99: fixed.p99, rssMB: await peakRss(pid) };
  console.log(`${name.padEnd(22)} ${Math.round(result.rps).toString().padStart(7)} req/s  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms  @1k/s p99 ${result.fixedP99.toFixed(2)} ms  RSS ${result.rssMB?.toFixed(0) ?? '-'} MB`);
  return result;
}

async function main(): Promise<void> {
  const node = process.execPath;
  const upstreamPort = await freePort();
  const upstream = `http://127.0.0.1:${upstreamPort}`;
  start(node, [join(ROOT, 'bench/upstream.ts'), String(upstreamPort)]);
  const results: Result[] = [];
  results.push(await measure('direct', `${upstream}/`));

  const [inbound, outbound, admin] = [await freePort(), await freePort(), await freePort()];
  const meshlet = start(node, [join(ROOT, 'bin/meshlet.js'), 'run', '--config', join(ROOT, 'config/minimal.yaml')], {
    MESHLET__INBOUND__LISTEN: `127.0.0.1:${inbound}`,
    MESHLET__INBOUND__PRIMARY: upstream,
    MESHLET__OUTBOUND__LISTEN: `127.0.0.1:${outbound}`,
    MESHLET__ADMIN__LISTEN: `127.0.0.1:${admin}`,
  });
  results.push(await measure('meshlet (inbound)', `http://127.0.0.1:${inbound}/`, meshlet.pid));

  const baselinePort = await freePort();
  const baseline = start(node, [join(ROOT, 'bench/http-proxy-baseline.ts'), String(baselinePort), upstream]);
  results.push(await measure('node-http-proxy', `http://127.0.0.1:${baselinePort}/`, baseline.pid));

  if (await has('haproxy')) {
    const haproxyPort = await freePort();
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-bench-'));
    const config = join(dir, 'haproxy.cfg');
    await writeFile(
      config,
      `global\n  maxconn 4096\n  nbthread 1\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\n` +
        `frontend bench\n  bind 127.0.0.1:${haproxyPort}\n  default_backend up\nbackend up\n  http-reuse always\n  server up 127.0.0.1:${upstreamPort}\n`,
    );
    const haproxy = start('haproxy', ['-f', config, '-db']);
    results.push(await measure('haproxy (1 thread)', `http://127.0.0.1:${haproxyPort}/`, haproxy.pid));
  }

  // 1,000 concurrent connections against meshlet, for its memory target.
  const crowd = await autocannon(['-c', '1000', '-d', String(SECONDS), `http://127.0.0.1:${inbound}/`]);
  const crowdRss = await peakRss(meshlet.pid);
  console.log(`meshlet @1000 connections: ${Math.round(crowd.requests.average)} req/s, non-2xx ${crowd.non2xx}, errors ${crowd.errors}, peak RSS ${crowdRss?.toFixed(0)} MB`);

  await writeFile(join(ROOT, 'bench/RESULTS.md'), report(results, crowdRss, crowd));
  console.log('\nwritten to bench/RESULTS.md');
}

function report(results: Result[], crowdRss: number | null, crowd: AutocannonReport): string {
  const direct = results.find((r) => r.name === 'direct')!;
  const meshlet = results.find((r) => r.name.startsWith('meshlet'))!;
  const baseline = results.find((r) => r.name === 'node-http-proxy')!;
  const rows = results.map(
    (r) =>
      `| ${r.name} | ${Math.round(r.rps)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.fixedP50.toFixed(2)} | ${r.fixedP99.toFixed(2)} | ` +
      `${r.name === 'direct' ? '-' : (r.fixedP99 - direct.fixedP99).toFixed(2)} | ${r.rssMB?.toFixed(0) ?? '-'} | ${(r.rps / baseline.rps).toFixed(2)} |`,
  );
  const added = meshlet.fixedP99 - direct.fixedP99;
  return `# Benchmark results

Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.
Everything on loopback on the same machine (load generator, proxies, upstream share ${cpus().length} cores), so compare ratios, not absolutes.
Max throughput: ${SECONDS}s of wrk (2 threads, ${CONNECTIONS} connections, or autocannon if wrk is missing). Fixed rate: autocannon -R ${FIXED_RATE}, 20 connections, ${SECONDS}s.
meshlet runs its default config (access log on, to /dev/null).

| target | req/s | p50 ms | p99 ms | p50 ms @1k/s | p99 ms @1k/s | p99 added @1k/s ms | peak RSS MB | throughput vs node-http-proxy |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Targets:
- meshlet throughput >= 1.5x node-http-proxy: **${(meshlet.rps / baseline.rps).toFixed(2)}x** (${meshlet.rps / baseline.rps >= 1.5 ? 'met' : 'not met'})
- p99 latency added over direct at 1,000 req/s <= 1 ms: **${added.toFixed(2)} ms** (${added <= 1 ? 'met' : 'not met'}; autocannon reports whole milliseconds, so this is coarse)
- RSS <= 100 MB at 1,000 concurrent connections: **${crowdRss?.toFixed(0)} MB** peak (${(crowdRss ?? Infinity) <= 100 ? 'met' : 'not met'}); ${Math.round(crowd.requests.average)} req/s, ${crowd.non2xx} non-2xx, ${crowd.errors} errors
`;
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const child of children) child.kill('SIGKILL');
  });
