/**
 * The meshlet under soak: the real CLI as a child process (bin/meshlet.js, compiled dist/), with what
 * the soak watches from outside: its resident memory and open file descriptors from /proc, its log
 * lines at warn and above, its admin /healthz, and its in-flight gauge.
 *
 * The CLI re-executes itself with execve to set V8 flags (bin/meshlet.js), keeping its PID: the child's
 * PID is the serving process's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { get } from 'node:http';
import { createInterface } from 'node:readline';

const ROOT = new URL('../..', import.meta.url).pathname;

export type Meshlet = {
  child: ChildProcess;
  pid: number;
  inbound: string;
  outbound: string;
  admin: string;
  /** Resolves when the process exits, with its code (null when killed by a signal) and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Log lines at warn or above, counted by level and message (access-log lines are not read). */
  warnings: Map<string, number>;
};

export async function startMeshlet(primaryUrl: string): Promise<Meshlet> {
  const child = spawn(process.execPath, [`${ROOT}bin/meshlet.js`, 'run', '--config', `${ROOT}config/minimal.yaml`], {
    env: {
      ...process.env,
      MESHLET__SERVICE__NAME: 'soak',
      MESHLET__INBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__INBOUND__PRIMARY: primaryUrl,
      MESHLET__OUTBOUND__LISTEN: '127.0.0.1:0',
      MESHLET__ADMIN__LISTEN: '127.0.0.1:0',
      MESHLET__TELEMETRY__METRICS__LISTEN: '127.0.0.1:0',
      // The outbound listener's way to the same primary: Host `echo`.
      MESHLET__UPSTREAMS__ECHO__ENDPOINTS: `[${primaryUrl}]`,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // Never outlive the soak, even when it fails or is interrupted.
  process.once('exit', () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );

  const warnings = new Map<string, number>();
  const addresses: Record<string, string> = {};
  const started = Promise.withResolvers<void>();
  // The access log goes to stdout, one JSON line per request: every line must be read (or the pipe
  // fills and meshlet stalls), but only the others are parsed.
  createInterface({ input: child.stdout! }).on('line', (text) => {
    if (text.includes('"type":"access"')) return;
    const line = JSON.parse(text) as { level?: number; msg?: string; listener?: string; address?: string; admin?: string };
    if (line.msg === 'listening' && line.listener && line.address) addresses[line.listener] = line.address;
    if (line.msg === 'meshlet started' && line.admin) {
      addresses.admin = line.admin;
      started.resolve();
    }
    if ((line.level ?? 0) >= 40) {
      const key = `${line.level! >= 50 ? 'error' : 'warn'}: ${line.msg}`;
      warnings.set(key, (warnings.get(key) ?? 0) + 1);
    }
  });
  await Promise.race([started.promise, exited.then(() => Promise.reject(new Error('meshlet exited before it started')))]);
  return {
    child,
    pid: child.pid!,
    inbound: addresses.inbound!,
    outbound: addresses.outbound!,
    admin: addresses.admin!,
    exited,
    warnings,
  };
}

export type Usage = { rssMB: number; fds: number };

/** Resident memory (VmRSS) and open file descriptors of a process now. */
export async function usage(pid: number): Promise<Usage> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKB = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  return { rssMB: rssKB / 1024, fds };
}

/** One GET, bounded by `timeoutMs`; resolves with the status, or rejects. */
export function httpGet(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

export type HealthProbe = { answered: number; failed: number; slowestMs: number; stop: () => void };

/**
 * GET /healthz on the admin listener every second, each bounded by 2 s: the contract says it answers
 * 200 while the process is alive, so a miss under load is a defect (a blocked event loop, say).
 */
export function probeHealth(admin: string): HealthProbe {
  const probe: HealthProbe = { answered: 0, failed: 0, slowestMs: 0, stop: () => clearInterval(timer) };
  const timer = setInterval(() => {
    const started = performance.now();
    httpGet(`http://${admin}/healthz`, 2_000).then(
      ({ status }) => {
        if (status === 200) probe.answered++;
        else probe.failed++;
        probe.slowestMs = Math.max(probe.slowestMs, performance.now() - started);
      },
      () => probe.failed++,
    );
  }, 1_000);
  return probe;
}

export type Heap = { usedMB: number; totalMB: number };

/**
 * meshlet's V8 heap (in use, and reserved) from its /metrics. In use includes garbage not yet
 * collected, but after an idle settle V8 has collected (its memory reducer runs a full GC once
 * allocation stops), so it tells live JavaScript objects from memory the allocator merely kept.
 */
export async function heap(admin: string): Promise<Heap> {
  const { body } = await httpGet(`http://${admin}/metrics`, 5_000);
  const mb = (name: string) => metricSum(body, name) / 1024 / 1024;
  return { usedMB: mb('meshlet_nodejs_heap_size_used_bytes'), totalMB: mb('meshlet_nodejs_heap_size_total_bytes') };
}

/** The sum of a metric's series in Prometheus text (e.g. every `meshlet_requests_in_flight`). */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
