/**
 * `npm run demo`: two agents, each with its own meshlet sidecar, talking through them.
 *
 *   client ──► planner's meshlet (inbound) ──► planner agent
 *              planner agent ──► planner's meshlet (outbound, Host: researcher)
 *                            ──► researcher's meshlet (inbound) ──► researcher agent
 *
 * Phases: plain calls, one trace across the client and both agents, an SSE token stream, a failing
 * phase; then a summary from the sidecars' own /metrics, a graceful SIGTERM of both sidecars, and exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import { freePort } from './free-port.ts';

const CLI = new URL('../bin/meshlet.js', import.meta.url).pathname;
const AGENT = new URL('./agent.ts', import.meta.url).pathname;
const children: ChildProcess[] = [];

function startAgent(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [AGENT, ...args], { stdio: 'inherit' });
  children.push(child);
  return child;
}

type AccessLine = { direction: string; path: string; traceId?: string };
type Sidecar = { child: ChildProcess; inbound: string; outbound: string; admin: string; accessLines: number; traced: AccessLine[]; exit: Promise<number | null> };

/** Run `meshlet run` with ports from the OS; resolves once its admin says it started. */
async function startSidecar(config: string, env: Record<string, string>): Promise<Sidecar> {
  const [inbound, outbound, admin] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, [CLI, 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      MESHLET__INBOUND__LISTEN: `127.0.0.1:${inbound}`,
      MESHLET__OUTBOUND__LISTEN: `127.0.0.1:${outbound}`,
      MESHLET__ADMIN__LISTEN: `127.0.0.1:${admin}`,
      MESHLET__TELEMETRY__METRICS__LISTEN: '127.0.0.1:0',
      // Tracing on, with no collector to send to: spans are made and propagated, and the access log
      // names each request's trace.
      MESHLET__TELEMETRY__TRACING__ENABLED: 'true',
      OTEL_TRACES_EXPORTER: 'none',
      ...env,
    },
  });
  children.push(child);
  const sidecar: Sidecar = {
    child,
    inbound: `http://127.0.0.1:${inbound}`,
    outbound: `http://127.0.0.1:${outbound}`,
    admin: `http://127.0.0.1:${admin}`,
    accessLines: 0,
    traced: [],
    exit: new Promise((resolve) => child.on('exit', resolve)),
  };
  const started = Promise.withResolvers<void>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as AccessLine & { msg: string; type?: string };
    if (line.type === 'access') sidecar.accessLines++;
    if (line.type === 'access' && line.traceId !== undefined) sidecar.traced.push(line);
    if (line.msg === 'meshlet started') started.resolve();
  });
  await started.promise;
  return sidecar;
}

async function waitReady(sidecar: Sidecar): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await request(`${sidecar.admin}/readyz`)).statusCode === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${sidecar.admin} never became ready`);
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
  const [researcherPort, plannerPort] = [await freePort(), await freePort()];
  startAgent(['researcher', String(researcherPort)]);
  const researcher = await startSidecar('examples/researcher.yaml', { MESHLET__INBOUND__PRIMARY: `http://127.0.0.1:${researcherPort}` });
  const planner = await startSidecar('examples/planner.yaml', {
    MESHLET__INBOUND__PRIMARY: `http://127.0.0.1:${plannerPort}`,
    MESHLET__UPSTREAMS__RESEARCHER__ENDPOINTS: `[${researcher.inbound}]`,
  });
  startAgent(['planner', String(plannerPort), planner.outbound]);
  await Promise.all([waitReady(researcher), waitReady(planner)]);
  console.log(`\n▶ planner's meshlet on ${planner.inbound}, researcher's on ${researcher.inbound}\n`);

  console.log('1. Plain calls: client → planner → (outbound, Host: researcher) → researcher');
  const statuses: Record<number, number> = {};
  for (let i = 0; i < 25; i++) {
    const res = await request(`${planner.inbound}/plan`, { method: 'POST' });
    await res.body.text();
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
  }
  console.log(`   25 calls → ${JSON.stringify(statuses)}`);

  console.log("2. One trace: the client's traceparent, through the planner, to the researcher");
  const traceId = randomBytes(16).toString('hex');
  await (await request(`${planner.inbound}/plan`, { method: 'POST', headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } })).body.text();
  const hops: [Sidecar, string][] = [[planner, 'inbound'], [planner, 'outbound'], [researcher, 'inbound']];
  // Access lines are written in batches (every 250 ms at most).
  for (let i = 0; i < 20 && !hops.every(([s, d]) => s.traced.some((l) => l.traceId === traceId && l.direction === d)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const [sidecar, direction] of hops) {
    const line = sidecar.traced.find((l) => l.traceId === traceId && l.direction === direction);
    console.log(`   ${sidecar === planner ? 'planner' : 'researcher'}'s meshlet, ${direction.padEnd(8)} ${line?.path ?? '(missing)'}  traceId ${line?.traceId ?? '-'}`);
  }

  console.log('3. A token stream (SSE) relayed through both sidecars, chunk by chunk:');
  const streamStart = performance.now();
  const stream = await request(`${planner.inbound}/plan/stream`);
  for await (const chunk of stream.body) {
    for (const event of String(chunk).split('\n\n').filter(Boolean)) {
      console.log(`   +${String(Math.round(performance.now() - streamStart)).padStart(4)} ms  ${event}`);
    }
  }

  console.log('4. Failing phase: the researcher agent dies');
  const researcherAgent = children[0]!;
  researcherAgent.kill('SIGKILL');
  await new Promise((resolve) => researcherAgent.once('exit', resolve));
  const failures: Record<string, number> = {};
  for (let i = 0; i < 10; i++) {
    const res = await request(`${planner.inbound}/plan`, { method: 'POST' });
    await res.body.text();
    const key = `${res.statusCode} ${res.headers['x-meshlet-error'] || ''}`.trim();
    failures[key] = (failures[key] ?? 0) + 1;
  }
  console.log(`   10 calls → ${JSON.stringify(failures)} (the researcher's meshlet answers upstream_unreachable)`);
  // Its health check (every 1 s, 3 failures in a row) takes the researcher out of readiness.
  let readyz = await request(`${researcher.admin}/readyz`);
  for (let i = 0; i < 80 && readyz.statusCode === 200; i++) {
    await readyz.body.text();
    await new Promise((resolve) => setTimeout(resolve, 100));
    readyz = await request(`${researcher.admin}/readyz`);
  }
  const { reasons } = (await readyz.body.json()) as { reasons: string[] };
  console.log(`   researcher's /readyz: ${readyz.statusCode} ${JSON.stringify(reasons)}`);

  console.log("\n── Summary, from the sidecars' own /metrics ──");
  for (const [name, sidecar] of [['planner', planner], ['researcher', researcher]] as const) {
    const metrics = await (await request(`${sidecar.admin}/metrics`)).body.text();
    const inbound = sum(metrics, 'meshlet_requests_total', { direction: 'inbound' });
    const outbound = sum(metrics, 'meshlet_requests_total', { direction: 'outbound' });
    const errors = sum(metrics, 'meshlet_requests_total', { code: '502' }) + sum(metrics, 'meshlet_requests_total', { code: '503' });
    const localReplies = sum(metrics, 'meshlet_local_replies_total');
    const durationSum = sum(metrics, 'meshlet_request_duration_seconds_sum', { direction: 'inbound' });
    const durationCount = sum(metrics, 'meshlet_request_duration_seconds_count', { direction: 'inbound' });
    console.log(
      `${name.padEnd(10)} inbound ${inbound}  outbound ${outbound}  5xx ${errors}  local replies ${localReplies}  ` +
        `mean inbound ${((durationSum / Math.max(1, durationCount)) * 1000).toFixed(1)} ms  ` +
        `primary healthy ${sum(metrics, 'meshlet_primary_healthy')}  access-log lines ${sidecar.accessLines}`,
    );
  }

  console.log('\n5. SIGTERM both sidecars: they drain and exit 0');
  planner.child.kill('SIGTERM');
  researcher.child.kill('SIGTERM');
  const codes = await Promise.all([planner.exit, researcher.exit]);
  console.log(`   exit codes: ${codes.join(', ')}; demo took ${((performance.now() - began) / 1000).toFixed(1)} s\n`);
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  });
