/**
 * `npm run demo`: three agents on one machine, each with its own meshlet sidecar. They find each other
 * in the sqlite registry (one file the sidecars share), by name and by skill: no config holds an address.
 *
 *   client ──► planner's meshlet (inbound) ──► planner agent
 *              planner agent ──► planner's meshlet (outbound, Host: researcher | summarize.skill)
 *                            ──► researcher #1's or #2's meshlet (inbound) ──► that researcher
 *
 * Phases: calls by name, by skill, `meshlet agents`, one trace id across three hops, an SSE token
 * stream; researcher #1's sidecar
 * killed with -9 mid-traffic, and traffic moving to #2; retries hiding a flaky model; researcher #2's
 * agent dying (the planner's breaker opens, then closes once it is back); a summary from the
 * sidecars' own /metrics; a graceful SIGTERM of every sidecar (each deregisters first), and exit.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import { freePort } from './free-port.ts';

const CLI = new URL('../bin/meshlet.js', import.meta.url).pathname;
const AGENT = new URL('./agent.ts', import.meta.url).pathname;
const REGISTRY_DIR = mkdtempSync(join(tmpdir(), 'meshlet-demo-'));
const children: ChildProcess[] = [];

function startAgent(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [AGENT, ...args], { stdio: 'inherit' });
  children.push(child);
  return child;
}

type Line = { msg: string; type?: string; id?: string; service?: string; direction?: string; path?: string; traceId?: string };
type Sidecar = { child: ChildProcess; inbound: string; outbound: string; admin: string; accessLines: number; lines: Line[]; exit: Promise<number | null>; next: (msg: string) => Promise<Line> };

/** Run `meshlet run` with ports from the OS and the demo's registry file; resolves once it started. */
async function startSidecar(config: string, primaryPort: number): Promise<Sidecar> {
  const [inbound, outbound, admin] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, [CLI, 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      MESHLET__INBOUND__LISTEN: `127.0.0.1:${inbound}`,
      MESHLET__INBOUND__PRIMARY: `http://127.0.0.1:${primaryPort}`,
      MESHLET__OUTBOUND__LISTEN: `127.0.0.1:${outbound}`,
      MESHLET__ADMIN__LISTEN: `127.0.0.1:${admin}`,
      MESHLET__TELEMETRY__METRICS__LISTEN: '127.0.0.1:0',
      MESHLET__REGISTRY__SQLITE__PATH: join(REGISTRY_DIR, 'registry.db'),
      NODE_NO_WARNINGS: '1', // node:sqlite says it is experimental, once per process
      // Tracing on, with no collector to send to: spans are made and propagated, and the access log
      // names each request's trace.
      MESHLET__TELEMETRY__TRACING__ENABLED: 'true',
      OTEL_TRACES_EXPORTER: 'none',
    },
  });
  children.push(child);
  const lines: Line[] = [];
  const waiters: { msg: string; resolve: (line: Line) => void }[] = [];
  const sidecar: Sidecar = {
    child,
    inbound: `http://127.0.0.1:${inbound}`,
    outbound: `http://127.0.0.1:${outbound}`,
    admin: `http://127.0.0.1:${admin}`,
    accessLines: 0,
    lines,
    exit: new Promise((resolve) => child.on('exit', resolve)),
    next: (msg) => {
      const found = lines.find((l) => l.msg === msg);
      return found ? Promise.resolve(found) : new Promise((resolve) => waiters.push({ msg, resolve }));
    },
  };
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as Line;
    if (line.type === 'access') sidecar.accessLines++;
    lines.push(line);
    for (const waiter of waiters.splice(0)) (waiter.msg === line.msg ? waiter.resolve(line) : waiters.push(waiter));
  });
  await sidecar.next('meshlet started');
  return sidecar;
}

/** One call to the planner; the researcher instance that answered, or the failure. */
async function call(planner: Sidecar, path: string): Promise<string> {
  const res = await request(`${planner.inbound}${path}`, { method: 'POST' });
  const text = await res.body.text();
  if (res.statusCode !== 200) return `${res.statusCode} ${res.headers['x-meshlet-error'] ?? ''}`.trim();
  return (JSON.parse(text) as { answeredBy: string }).answeredBy;
}

function tally(answers: string[]): string {
  const counts: Record<string, number> = {};
  for (const answer of answers) counts[answer] = (counts[answer] ?? 0) + 1;
  return Object.entries(counts).map(([answer, n]) => `${answer} x${n}`).join(', ');
}

/** The planner's breaker for `researcher`, and why it is in that state. */
async function breakerState(planner: Sidecar): Promise<string> {
  const { breakers } = (await (await request(`${planner.admin}/breakers`)).body.json()) as {
    breakers: { upstream: string; state: string; lastTransition: { reason: string } | null }[];
  };
  const breaker = breakers.find((b) => b.upstream === 'researcher');
  return breaker === undefined ? 'none' : `${breaker.state} (${breaker.lastTransition?.reason ?? 'never moved'})`;
}

/** Sum a metric's samples whose labels match, from Prometheus text. */
function sum(metrics: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

async function main(): Promise<void> {
  const began = performance.now();
  const ports = { planner: await freePort(), one: await freePort(), two: await freePort() };
  startAgent(['researcher', String(ports.one), 'researcher-1']);
  let researcherTwo = startAgent(['researcher', String(ports.two), 'researcher-2']);
  const [one, two] = await Promise.all([startSidecar('examples/researcher.yaml', ports.one), startSidecar('examples/researcher.yaml', ports.two)]);
  await Promise.all([one.next('registered'), two.next('registered')]);
  // The planner agent calls through its sidecar's outbound port; its sidecar registers it once it is up.
  const planner = await startSidecar('examples/planner.yaml', ports.planner);
  startAgent(['planner', String(ports.planner), planner.outbound]);
  const registered = await Promise.all([one, two, planner].map((s) => s.next('registered')));
  console.log(`\n▶ three agents, three sidecars, one registry (${join(REGISTRY_DIR, 'registry.db')}); no addresses in any config`);
  console.log(`  registered: ${registered.map((l) => l.id).join(', ')}\n`);

  console.log('1. By name: client → planner → (Host: researcher) → either researcher');
  const byName = [];
  for (let i = 0; i < 10; i++) byName.push(await call(planner, '/plan'));
  console.log(`   10 calls → ${tally(byName)}`);

  console.log('2. By skill: planner → (Host: summarize.skill) → any agent whose card lists "summarize"');
  const bySkill = [];
  for (let i = 0; i < 4; i++) bySkill.push(await call(planner, '/plan/skill'));
  console.log(`   4 calls → ${tally(bySkill)}`);

  console.log(`3. npx meshlet agents --admin ${planner.admin}`);
  const table = execFileSync(process.execPath, [CLI, 'agents', '--admin', planner.admin], { encoding: 'utf8' });
  console.log(table.trimEnd().replace(/^(?=.)/gm, '   '));

  console.log("4. One trace: the client's traceparent, through the planner, to a researcher");
  const traceId = randomBytes(16).toString('hex');
  await (await request(`${planner.inbound}/plan`, { method: 'POST', headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } })).body.text();
  const traced = (s: Sidecar, direction: string) => s.lines.find((l) => l.type === 'access' && l.traceId === traceId && l.direction === direction);
  const hops: [string, () => Line | undefined][] = [
    ["planner's meshlet, inbound ", () => traced(planner, 'inbound')],
    ["planner's meshlet, outbound", () => traced(planner, 'outbound')],
    ["a researcher's meshlet, inbound", () => traced(one, 'inbound') ?? traced(two, 'inbound')],
  ];
  // Access lines are written in batches (every 250 ms at most).
  for (let i = 0; i < 20 && !hops.every(([, find]) => find() !== undefined); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  for (const [name, find] of hops) console.log(`   ${name.padEnd(32)} ${find()?.path ?? '(missing)'}  traceId ${find()?.traceId ?? '-'}`);

  console.log('5. A token stream (SSE) relayed through both sidecars, chunk by chunk:');
  const streamStart = performance.now();
  const stream = await request(`${planner.inbound}/plan/stream`, { method: 'POST' });
  for await (const chunk of stream.body) {
    for (const event of String(chunk).split('\n\n').filter(Boolean)) {
      console.log(`   +${String(Math.round(performance.now() - streamStart)).padStart(4)} ms  ${event}`);
    }
  }

  console.log("6. researcher-1's sidecar is killed with -9 while calls keep coming (one every 50 ms):");
  const timeline: { at: number; answer: string }[] = [];
  const killedAt = performance.now();
  one.child.kill('SIGKILL');
  const left = planner.next('instance left').then(() => performance.now() - killedAt);
  while (performance.now() - killedAt < 3_500) {
    timeline.push({ at: performance.now() - killedAt, answer: await call(planner, '/plan') });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const droppedAfter = await left;
  const before = timeline.filter((e) => e.at < droppedAfter).map((e) => e.answer);
  const after = timeline.filter((e) => e.at >= droppedAfter).map((e) => e.answer);
  console.log(`   its lease lapsed and the planner's sidecar dropped it ${Math.round(droppedAfter)} ms after the kill (ttl 2 s)`);
  console.log(`   until then: ${tally(before)}   (a connect failure is retried on the sibling)`);
  console.log(`   from then on: ${tally(after)}`);

  console.log("7. Retries: researcher-2's model answers 503 to every 3rd call");
  await (await request(`http://127.0.0.1:${ports.two}/flaky?every=3`, { method: 'POST' })).body.text();
  const flaky = [];
  for (let i = 0; i < 30; i++) flaky.push(await call(planner, '/plan'));
  await (await request(`http://127.0.0.1:${ports.two}/flaky?every=0`, { method: 'POST' })).body.text();
  const retries = sum(await (await request(`${planner.admin}/metrics`)).body.text(), 'meshlet_retries_total', { reason: '503' });
  console.log(`   30 calls → ${tally(flaky)}: the planner's meshlet retried ${retries} 503s (POSTs with an Idempotency-Key), within its budget`);

  console.log("8. researcher-2's agent dies: its meshlet answers 502, and the planner's breaker opens");
  // The demo's breaker window is 2 s (examples/planner.yaml): let the successes above leave it.
  await new Promise((resolve) => setTimeout(resolve, 2_100));
  researcherTwo.kill('SIGKILL');
  await new Promise((resolve) => researcherTwo.once('exit', resolve));
  const failing = [];
  for (let i = 0; i < 12; i++) failing.push(await call(planner, '/plan'));
  console.log(`   12 calls → ${tally(failing)}`);
  console.log(`   planner's breaker: ${await breakerState(planner)}`);
  console.log('   the agent comes back; after resetTimeout (2 s) one probe closes the breaker');
  researcherTwo = startAgent(['researcher', String(ports.two), 'researcher-2']);
  let recovered = '';
  for (let i = 0; i < 50 && recovered !== 'researcher-2'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    recovered = await call(planner, '/plan');
  }
  console.log(`   next call → ${recovered}; planner's breaker: ${await breakerState(planner)}`);

  console.log("\n── Summary, from the sidecars' own /metrics ──");
  for (const [name, sidecar] of [['planner', planner], ['researcher-2', two]] as const) {
    const metrics = await (await request(`${sidecar.admin}/metrics`)).body.text();
    const inbound = sum(metrics, 'meshlet_requests_total', { direction: 'inbound' });
    const outbound = sum(metrics, 'meshlet_requests_total', { direction: 'outbound' });
    const errors = sum(metrics, 'meshlet_requests_total', { code: '502' }) + sum(metrics, 'meshlet_requests_total', { code: '503' });
    console.log(
      `${name.padEnd(13)} inbound ${inbound}  outbound ${outbound}  5xx ${errors}  registered ${sum(metrics, 'meshlet_registry_registered')}  ` +
        `instances known ${sum(metrics, 'meshlet_registry_instances')}  access-log lines ${sidecar.accessLines}`,
    );
  }

  console.log('\n9. SIGTERM the other sidecars: each deregisters first, drains and exits 0');
  planner.child.kill('SIGTERM');
  two.child.kill('SIGTERM');
  const codes = await Promise.all([planner.exit, two.exit]);
  const deregistered = [planner, two].every((s) => s.lines.some((l) => l.msg === 'deregistered'));
  console.log(`   deregistered: ${deregistered ? 'yes' : 'no'}; exit codes: ${codes.join(', ')}; demo took ${((performance.now() - began) / 1000).toFixed(1)} s\n`);
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(REGISTRY_DIR, { recursive: true, force: true });
  });
