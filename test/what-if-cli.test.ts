/**
 * `meshlet breakers what-if` end to end, through the real CLI: against a running sidecar's admin
 * listener and against its access log, the picture it draws (parsed as XML), `--write` and the
 * reload that puts the candidate in force, and bad `--set`s worded as `meshlet validate` words them.
 * The sidecar runs on the real clock here: times compare to its log lines within a timer's lateness.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOMParser } from '@xmldom/xmldom';
import { request } from 'undici';
import type { WhatIfReport } from '../src/resilience/what-if.ts';
import { startChaos, type ChaosUpstream } from './helpers/chaos.ts';
import { spawnMeshlet } from './helpers/process.ts';
import { startSidecar, type Fixture } from './helpers/with-sidecar.ts';

const CLI = new URL('../bin/meshlet.js', import.meta.url).pathname;
const BREAKER = { errorThresholdPercentage: 50, volumeThreshold: 10, window: '10s', resetTimeout: '300ms' };
const STATES: Record<string, string> = { 'circuit breaker opened': 'open', 'circuit breaker half-open': 'half_open', 'circuit breaker closed': 'closed' };

type Run = { code: number | null; stdout: string; stderr: string };

function meshlet(args: string[], cwd: string): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MESHLET')));
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, env }, (error, stdout, stderr) => resolve({ code: error ? (error.code as number) : 0, stdout, stderr }));
  });
}

async function status(fixture: Fixture): Promise<number> {
  const res = await request(`${fixture.outbound}/`, { headers: { host: 'chaos' } });
  await res.body.text();
  return res.statusCode;
}

/** An outage and its recovery, live: 12 successes, failures until the breaker opens, then recovery. */
async function outage(t: ExecutionContext, retries: Record<string, unknown> = { maxRetries: 0 }): Promise<{ fixture: Fixture; chaos: ChaosUpstream }> {
  const chaos = await startChaos(t);
  const fixture = await startSidecar(t, { config: () => ({ upstreams: { chaos: { endpoints: [chaos.url], retries, circuitBreaker: BREAKER } } }) });
  for (let i = 0; i < 12; i++) await status(fixture);
  chaos.behaviour = { kind: 'status', status: 503 };
  while ((await status(fixture)) !== 503 || fixture.sidecar.upstreams.get('chaos')!.breaker!.state === 'closed');
  for (let i = 0; i < 5; i++) t.is(await status(fixture), 503);
  chaos.behaviour = { kind: 'ok' };
  await fixture.logs.next((l) => l.msg === 'circuit breaker half-open');
  t.is(await status(fixture), 200, 'the probe');
  await fixture.logs.next((l) => l.msg === 'circuit breaker closed');
  for (let i = 0; i < 5; i++) t.is(await status(fixture), 200);
  return { fixture, chaos };
}

function liveTransitions(fixture: Fixture): { at: number; to: string }[] {
  return fixture.logs.lines.flatMap((l) => (STATES[l.msg ?? ''] === undefined ? [] : [{ at: Date.parse(String(l.time)), to: STATES[l.msg!]! }]));
}

async function dir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'meshlet-what-if-'));
}

test('--admin: the running sidecar replays its history; the in-force replay is what the live breaker did, drawn as SVG and HTML', async (t) => {
  const { fixture } = await outage(t);
  const cwd = await dir();
  const run = await meshlet(['breakers', 'what-if', '--admin', fixture.admin, '--upstream', 'chaos', '--set', 'circuitBreaker.resetTimeout=1s', '--json', '--svg', 'w.svg', '--html', 'w.html'], cwd);
  t.is(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as WhatIfReport;
  const live = liveTransitions(fixture);
  t.deepEqual(report.inForce.transitions.map((x) => x.to), live.map((x) => x.to));
  for (const [i, replayed] of report.inForce.transitions.entries()) {
    // Opening and closing happen at an outcome, and are logged a few microtasks later (more on a
    // loaded machine that preempts the process); the half-open is opossum's real timer, late by the
    // event loop's delay. (test/what-if.test.ts compares exactly, on a fake clock.)
    const slack = replayed.to === 'half_open' ? 150 : 25;
    t.true(Math.abs(Date.parse(replayed.at) - live[i]!.at) <= slack, `${replayed.to}: replayed ${replayed.at}, live ${new Date(live[i]!.at).toISOString()}`);
  }
  t.is(report.outcomes.refusedByBreaker, 5);
  t.like(report.inForce, { rejected: 5, rejectedUnknown: 5, probes: 1 });
  t.is(report.candidate.settings?.resetTimeout, 1000);
  t.true(report.candidate.rejected > report.inForce.rejected, 'a longer resetTimeout refuses longer');

  const svg = new DOMParser({ onError: (level, message) => t.fail(`SVG ${level}: ${message}`) }).parseFromString(await readFile(join(cwd, 'w.svg'), 'utf8'), 'image/svg+xml');
  const bands = Array.from(svg.getElementsByTagName('rect')).filter((r) => r.getAttribute('class') === 'band');
  for (const [run, key] of [['in-force', 'inForce'], ['candidate', 'candidate']] as const) {
    const mine = bands.filter((b) => b.getAttribute('data-run') === run);
    t.deepEqual(
      mine.map((b) => [Number(b.getAttribute('data-from-ms')), Number(b.getAttribute('data-to-ms')), b.getAttribute('data-state')]),
      report[key].states,
      `${run}: one band per state, as the replay says`,
    );
    // The candidate's resetTimeout (1 s) is longer than what followed the opening: it is still open.
    t.deepEqual(mine.map((b) => b.getAttribute('data-state')), run === 'in-force' ? ['closed', 'open', 'half_open', 'closed'] : ['closed', 'open']);
    t.is(Number(mine.at(-1)!.getAttribute('data-to-ms')), report.durationMs, 'the bands cover the whole history');
  }
  const html = await readFile(join(cwd, 'w.html'), 'utf8');
  t.true(html.includes('<svg') && html.includes('that would have succeeded'), 'the picture and the table');
  t.notRegex(html, /(src|href)=|@import|url\(/, 'nothing to fetch: it opens offline');
});

test('--log: the history rebuilt from the access log (retries listed in "tries") replays like the live one', async (t) => {
  const { fixture } = await outage(t, { maxRetries: 1, backoff: { base: '1ms', max: '2ms' }, budget: { ratio: 1, minPerSecond: 100 } });
  const cwd = await dir();
  fixture.sidecar.flushLogs();
  await writeFile(join(cwd, 'access.log'), fixture.logs.lines.map((l) => JSON.stringify(l)).join('\n'));
  t.true(fixture.logs.access().some((l) => Array.isArray(l.tries)), 'some requests were retried');
  await writeFile(join(cwd, 'meshlet.yaml'), `service: { name: planner }\nupstreams:\n  chaos:\n    endpoints: [http://127.0.0.1:9]\n    circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 10, window: 10s, resetTimeout: 300ms }\n`);
  const fromLog = await meshlet(['breakers', 'what-if', '--log', 'access.log', '--config', 'meshlet.yaml', '--upstream', 'chaos', '--set', 'circuitBreaker.volumeThreshold=5', '--json'], cwd);
  t.is(fromLog.code, 0, fromLog.stderr);
  const rebuilt = JSON.parse(fromLog.stdout) as WhatIfReport;
  const res = await request(`${fixture.admin}/breakers/chaos/what-if`, { method: 'POST', body: '{}' });
  const kept = (await res.body.json()) as WhatIfReport;
  t.deepEqual(rebuilt.outcomes, kept.outcomes, 'the same outcomes as the sidecar kept');
  t.deepEqual(rebuilt.inForce.transitions.map((x) => x.to), liveTransitions(fixture).map((x) => x.to));
  t.like(rebuilt.inForce, { failuresLetThrough: kept.inForce.failuresLetThrough, probes: kept.inForce.probes });
  // The log's times are whole milliseconds: an attempt admitted within a millisecond of the opening
  // may land on the other side of it.
  t.true(Math.abs(rebuilt.inForce.rejected - kept.inForce.rejected) <= 1, `rejected: ${rebuilt.inForce.rejected} from the log, ${kept.inForce.rejected} kept`);
  const table = await meshlet(['breakers', 'what-if', '--log', 'access.log', '--config', 'meshlet.yaml', '--upstream', 'chaos', '--set', 'circuitBreaker.volumeThreshold=5'], cwd);
  t.regex(table.stdout, /volumeThreshold\s+10\s+5\n/);
  t.regex(table.stdout, /times opened\s+1\s+1\n/);
});

test('--write puts the candidate in a copy of the config, comments kept and validated; a reload applies it and names the keys', async (t) => {
  const cwd = await dir();
  const config = `# the planner's sidecar
service: { name: planner, drainDelay: 0 }
admin: { listen: 127.0.0.1:0 }
inbound: { listen: 127.0.0.1:0 }
outbound: { listen: 127.0.0.1:0 }
upstreams:
  chaos:
    endpoints: [http://127.0.0.1:9]
    circuitBreaker: { volumeThreshold: 10 } # quiet upstream
`;
  await writeFile(join(cwd, 'meshlet.yaml'), config);
  await writeFile(join(cwd, 'access.log'), `${JSON.stringify({ level: 30, time: new Date().toISOString(), type: 'access', upstream: 'chaos', durationMs: 5, outcome: 'success' })}\n`);
  const child = spawnMeshlet(t, ['run', '--config', join(cwd, 'meshlet.yaml')], {});
  await child.line((l) => l.msg === 'meshlet started');
  const run = await meshlet(['breakers', 'what-if', '--log', 'access.log', '-c', 'meshlet.yaml', '--upstream', 'chaos', '--set', 'circuitBreaker.errorThresholdPercentage=30', '--set', 'circuitBreaker.window=5s', '--write', 'candidate.yaml'], cwd);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stderr, /wrote candidate\.yaml: .*upstreams\.chaos\.circuitBreaker\.errorThresholdPercentage, upstreams\.chaos\.circuitBreaker\.window set; validated/);
  const written = await readFile(join(cwd, 'candidate.yaml'), 'utf8');
  t.is(written, config.replace('{ volumeThreshold: 10 }', '{ volumeThreshold: 10, errorThresholdPercentage: 30, window: 5s }'), 'only the values set changed: comments and layout kept');
  t.is((await meshlet(['validate', '-c', 'candidate.yaml'], cwd)).stdout, 'ok\n');
  await copyFile(join(cwd, 'candidate.yaml'), join(cwd, 'meshlet.yaml'));
  child.child.kill('SIGHUP');
  const reloaded = await child.line((l) => l.msg === 'config reloaded');
  t.deepEqual(reloaded.changed, ['upstreams.chaos.circuitBreaker.errorThresholdPercentage', 'upstreams.chaos.circuitBreaker.window']);
  child.child.kill('SIGTERM');
  t.is(await child.exit, 0);
});

test('bad --set keys and values get the key-path messages of meshlet validate', async (t) => {
  const cwd = await dir();
  await writeFile(join(cwd, 'bad.yaml'), 'service: { name: planner }\nupstreams:\n  chaos:\n    circuitBreaker: { windw: 5s, errorThresholdPercentage: 300, failureOn: [reset, "404"], volumeThreshold: -1 }\n');
  const validate = await meshlet(['validate', '-c', 'bad.yaml'], cwd);
  const sets = ['circuitBreaker.windw=5s', 'circuitBreaker.errorThresholdPercentage=300', 'circuitBreaker.failureOn=[reset, "404"]', 'circuitBreaker.volumeThreshold=-1'].flatMap((set) => ['--set', set]);
  const whatIf = await meshlet(['breakers', 'what-if', '--upstream', 'chaos', ...sets, '--admin', 'http://127.0.0.1:9'], cwd);
  t.is(whatIf.code, 1);
  const lines = (text: string) => text.trim().split('\n').sort();
  t.deepEqual(lines(whatIf.stderr), lines(validate.stderr));
  t.is(lines(validate.stderr).length, 4);
  const other = await meshlet(['breakers', 'what-if', '--upstream', 'chaos', '--set', 'retries.maxRetries=1', '--set', 'window'], cwd);
  t.deepEqual(lines(other.stderr), ['--set window: expected KEY=VALUE, e.g. circuitBreaker.window=5s']);
  const retries = await meshlet(['breakers', 'what-if', '--upstream', 'chaos', '--set', 'retries.maxRetries=1'], cwd);
  t.is(retries.stderr, 'upstreams.chaos.retries: only circuitBreaker settings can be replayed\n');
});
