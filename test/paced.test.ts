/**
 * bench/paced.c, the benchmark's fixed-rate load generator: the README's latency figures are only as
 * true as it is, so its promises are tested against real servers: even spacing, interleaved targets,
 * stalls charged to every request due during them, and failures counted without hanging.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startUpstream } from './helpers/servers.ts';

const exec = promisify(execFile);
const SOURCE = new URL('../bench/paced.c', import.meta.url).pathname;

type Report = { url: string; requests: number; answered: number; errors: number; late: number; p50: number; p90: number; p99: number; max: number };

const dir = mkdtemp(join(tmpdir(), 'meshlet-paced-'));
test.after.always(async () => rm(await dir, { recursive: true, force: true }));

let binary: Promise<string> | undefined;
/** Compiled once per test file, as the benchmark does. */
function paced(): Promise<string> {
  binary ??= (async () => {
    const path = join(await dir, 'paced');
    await exec('cc', ['-O2', '-o', path, SOURCE]);
    return path;
  })();
  return binary;
}

async function run(args: string[]): Promise<Report[]> {
  const { stdout } = await exec(await paced(), args, { timeout: 30_000 });
  return stdout.trim().split('\n').map((line) => JSON.parse(line) as Report);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

test('requests are evenly spaced, targets take turns by slice, and each is charged its own latency', async (t) => {
  const arrivals: number[] = [];
  const fast = await startUpstream(t, (_req, res) => {
    arrivals.push(performance.now());
    res.end('fast');
  });
  const slow = await startUpstream(t, (_req, res) => setTimeout(() => res.end('slow'), 40));
  const [a, b] = await run(['-r', '200', '-d', '1', '-s', '100', '-w', '0', `${fast.url}/`, `${slow.url}/x`]);

  t.like(a, { url: `${fast.url}/`, requests: 200, errors: 0 });
  t.like(b, { url: `${slow.url}/x`, requests: 200, errors: 0 });
  t.true(a!.p50 < 20, `fast target p50 ${a!.p50} ms`);
  // (Node timers may fire a little early by the wall clock: 40 ms comes back as 39.x.)
  t.true(b!.p50 >= 35 && b!.p50 < 200, `slow target p50 ${b!.p50} ms`);
  t.true(slow.requests.every((req) => req.url === '/x' && req.headers.host === `127.0.0.1:${slow.port}`));

  // 200 req/s is one every 5 ms within a slice; slices of 100 ms alternate, so the fast server sees
  // runs of ~20 requests separated by ~100 ms gaps (one per slice the slow target had).
  const gaps = arrivals.slice(1).map((at, i) => at - arrivals[i]!);
  const within = gaps.filter((gap) => gap < 50);
  const between = gaps.filter((gap) => gap >= 50);
  t.true(median(within) > 3.5 && median(within) < 6.5, `median spacing ${median(within).toFixed(2)} ms`);
  t.true(between.length >= 8 && between.length <= 11, `${between.length} slice gaps`);
});

test('a stall is charged to every request due during it, not only to the one that met it', async (t) => {
  let stalled = false;
  const held: Array<() => void> = [];
  const upstream = await startUpstream(t, (_req, res) => {
    if (upstream.requests.length === 30) {
      stalled = true; // from the 30th request on, nothing is answered for 300 ms
      setTimeout(() => {
        stalled = false;
        held.splice(0).forEach((answer) => answer());
      }, 300);
    }
    if (stalled) held.push(() => res.end('late'));
    else res.end('ok');
  });
  // 100 req/s on 2 connections: the stall blocks both, so ~30 requests fall due while nothing moves.
  const [report] = await run(['-r', '100', '-d', '1', '-c', '2', '-w', '0', `${upstream.url}/`]);

  t.like(report, { requests: 100, errors: 0 });
  t.true(report!.late > 20, `${report!.late} requests found no free connection`);
  // A closed-loop client would record two slow requests; here the ~30 due during the stall are slow.
  t.true(report!.p90 >= 100, `p90 ${report!.p90} ms`);
  t.true(report!.max >= 280 && report!.max < 1000, `max ${report!.max} ms`);
  t.true(report!.p50 < 50, `p50 ${report!.p50} ms`);
});

test('connections cut mid-request count as errors, and the run still ends on time', async (t) => {
  let seen = 0;
  const upstream = await startUpstream(t, (req, res) => {
    seen++;
    if (seen % 10 === 0) req.socket.destroy();
    else res.end('ok');
  });
  const started = performance.now();
  const [report] = await run(['-r', '200', '-d', '1', '-w', '0', `${upstream.url}/`]);

  t.is(report!.requests + report!.errors, 200);
  t.is(report!.errors, 20);
  t.true(performance.now() - started < 5000);
});

test('connections the server closes while idle are replaced, and a request that meets that race goes again', async (t) => {
  // Every 250 ms against a 200 ms keep-alive timeout: each request finds its connection closed.
  const closing = await startUpstream(t);
  closing.server.keepAliveTimeout = 200;
  closing.server.keepAliveTimeoutBuffer = 0; // Node 24 waits this much longer, 1 s by default
  const [replaced] = await run(['-r', '4', '-d', '1', '-w', '0', `${closing.url}/`]);
  t.like(replaced, { requests: 4, errors: 0 });
  t.is(closing.requests.length, 4);

  // The race: the server drops a request that arrives on a connection idle for over a second, as a
  // server whose keep-alive timeout fires just then would. The request goes again on a new connection.
  const idleSince = new WeakMap<object, number>();
  const racing = await startUpstream(t, (req, res) => {
    const since = idleSince.get(req.socket);
    if (since !== undefined && performance.now() - since > 1000) {
      req.socket.destroy();
      return;
    }
    res.end('ok', () => idleSince.set(req.socket, performance.now()));
  });
  const [retried] = await run(['-r', '0.5', '-d', '4', '-w', '0', `${racing.url}/`]);
  t.like(retried, { requests: 2, errors: 0 });
  t.is(racing.requests.length, 3);
});

test('bad arguments are refused with exit code 2', async (t) => {
  for (const args of [[], ['http://localhost:80/'], ['-r', '0', 'http://127.0.0.1:80/'], ['https://127.0.0.1:80/']]) {
    const error = await t.throwsAsync(exec(await paced(), args));
    t.is((error as Error & { code?: number }).code, 2, args.join(' '));
  }
});

test('warm-up requests are served and counted as answered, but not measured', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => res.end('ok'));
  const [report] = await run(['-r', '200', '-d', '1', '-w', '0.5', `${upstream.url}/`]);
  t.like(report, { requests: 200, answered: 300, errors: 0 });
  t.is(upstream.requests.length, 300);
});
