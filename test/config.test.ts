import test from 'ava';
import { execFile } from 'node:child_process';
import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfigFile, loadConfigText } from '../src/config/load.ts';
import { configJsonSchema } from '../src/config/json-schema.ts';
import { parseDuration, parseSize } from '../src/config/units.ts';
import { closestKey, editDistance } from '../src/config/suggest.ts';

const run = promisify(execFile);
const CLI = new URL('../bin/meshlet.js', import.meta.url).pathname;

function problems(yaml: string, env: Record<string, string> = {}): string[] {
  const result = loadConfigText(yaml, env);
  return result.ok ? [] : result.problems;
}

test('durations and sizes', (t) => {
  t.is(parseDuration('250ms'), 250);
  t.is(parseDuration('1.5s'), 1500);
  t.is(parseDuration('5m'), 300_000);
  t.is(parseDuration('0'), 0);
  t.is(parseDuration('10'), undefined);
  t.is(parseDuration('-1s'), undefined);
  t.is(parseSize('64KiB'), 65_536);
  t.is(parseSize('1MiB'), 1_048_576);
  t.is(parseSize('64KB'), undefined);
});

test('an unknown key is matched to a known one only when it is close', (t) => {
  t.is(editDistance('drainTimout', 'drainTimeout'), 1);
  t.is(editDistance('idel', 'idle'), 1); // a swap of neighbours is one edit
  const keys = ['name', 'drainTimeout', 'drainDelay'];
  t.is(closestKey('drainTimout', keys), 'drainTimeout');
  t.is(closestKey('DRAINDELAY', keys), 'drainDelay');
  t.is(closestKey('nme', keys), 'name');
  t.is(closestKey('foo', keys), undefined);
  t.is(closestKey('drain', keys), undefined);
});

test('every field but service.name has a default', (t) => {
  const result = loadConfigText('service: { name: planner }', {});
  if (!result.ok) return t.fail(result.problems.join());
  t.is(result.config.inbound.listen, '0.0.0.0:15006');
  t.is(result.config.inbound.timeouts.firstByte, 60_000);
  t.is(result.config.inbound.timeouts.total, 0);
  t.is(result.config.defaults.retries.maxBodyBytes, 65_536);
  t.is(result.config.registry.backend, 'static');
  t.deepEqual(problems(''), ['service: is required']);
  t.deepEqual(problems('service: {}'), ['service.name: is required']);
});

test('every problem is reported with its key path', (t) => {
  const found = problems(`
service: { name: planner }
inbound: { listen: nowhere, primary: "ftp://x", timeouts: { firstByte: soon } }
upstreams:
  search:
    retries: { maxRetries: -1 }
    timeouts: { bogus: 1s }
registry: { backend: consul }
extra: true
`);
  t.deepEqual(found.sort(), [
    'extra: unknown key',
    'inbound.listen: not host:port (got "nowhere"): use e.g. 127.0.0.1:15001 (port 0 picks a free port)',
    'inbound.primary: not an http:// origin (got "ftp://x"): use e.g. http://127.0.0.1:8080 (no path)',
    'inbound.timeouts.firstByte: not a duration (got "soon"): use e.g. 250ms, 10s, 5m, or 0',
    'registry.backend: must be one of "static", "sqlite", "etcd" (got "consul")',
    'upstreams.search.retries.maxRetries: must be >= 0 (got -1)',
    'upstreams.search.timeouts.bogus: unknown key',
  ]);
});

test('invalid YAML is a problem, not a crash', (t) => {
  t.regex(problems('service: [unclosed')[0] ?? '', /^\(config\): invalid YAML: .* at line 1, column 19:\n/);
  t.deepEqual(problems('service: &s\n  name: *s\n'), ['service.name: must be a string (got a map that contains itself)']);
});

test('an upstream overrides defaults key by key', (t) => {
  const result = loadConfigText(
    `
service: { name: planner }
defaults: { timeouts: { connect: 2s }, retries: { maxRetries: 4 } }
upstreams:
  slow: { endpoints: [http://127.0.0.1:1], timeouts: { firstByte: 5m } }
  plain: { endpoints: [http://127.0.0.1:2] }
`,
    {},
  );
  if (!result.ok) return t.fail(result.problems.join());
  t.deepEqual(result.config.upstreams.slow!.timeouts, { connect: 2000, firstByte: 300_000, idle: 300_000, total: 0 });
  t.is(result.config.upstreams.slow!.retries.maxRetries, 4);
  t.is(result.config.upstreams.plain!.timeouts.firstByte, 60_000);
});

test('environment variables override config keys (MESHLET__A__B)', (t) => {
  const result = loadConfigText('service: { name: planner }', {
    MESHLET__SERVICE__NAME: 'researcher',
    MESHLET__INBOUND__TIMEOUTS__FIRSTBYTE: '2m',
    MESHLET__UPSTREAMS__SEARCH__ENDPOINTS: '[http://127.0.0.1:7000]',
    MESHLET__DEFAULTS__RETRIES__MAXRETRIES: '0',
    UNRELATED: 'x',
  });
  if (!result.ok) return t.fail(result.problems.join());
  t.is(result.config.service.name, 'researcher');
  t.is(result.config.inbound.timeouts.firstByte, 120_000);
  t.deepEqual(result.config.upstreams.search!.endpoints, ['http://127.0.0.1:7000']);
  t.is(result.config.upstreams.search!.retries.maxRetries, 0);
  t.deepEqual(problems('service: { name: planner }', { MESHLET__INBOUND__LIMITS__MAXHEADERBYTES: 'big' }), [
    'inbound.limits.maxHeaderBytes: not a size (got "big", from MESHLET__INBOUND__LIMITS__MAXHEADERBYTES): use e.g. 512B, 64KiB, or 1MiB',
  ]);
});

test('the example configs are valid', async (t) => {
  for (const file of ['config/meshlet.yaml', 'config/minimal.yaml', 'examples/planner.yaml', 'examples/researcher.yaml']) {
    const result = await loadConfigFile(new URL(`../${file}`, import.meta.url).pathname, {});
    t.true(result.ok, `${file}: ${result.ok ? '' : result.problems.join('; ')}`);
  }
});

test('config/meshlet.schema.json is up to date (npm run schema)', async (t) => {
  const committed = JSON.parse(await readFile(new URL('../config/meshlet.schema.json', import.meta.url), 'utf8')) as unknown;
  t.deepEqual(committed, JSON.parse(JSON.stringify(configJsonSchema())));
});

test('meshlet validate prints ok, or every problem on stderr and exits non-zero', async (t) => {
  const ok = await run(process.execPath, [CLI, 'validate', '--config', 'config/meshlet.yaml']);
  t.is(ok.stdout, 'ok\n');
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-'));
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'service: { name: planner }\nupstreams: { search: { retries: { maxRetries: -1 } } }\nnope: 1\n');
  const error = (await run(process.execPath, [CLI, 'validate', '--config', bad]).catch((e: unknown) => e)) as { code: number; stderr: string };
  t.is(error.code, 1);
  t.deepEqual(error.stderr.trim().split('\n').sort(), ['nope: unknown key', 'upstreams.search.retries.maxRetries: must be >= 0 (got -1)']);
  const fromEnv = await run(process.execPath, [CLI, 'validate'], { env: { ...process.env, MESHLET_CONFIG: 'config/minimal.yaml' } });
  t.is(fromEnv.stdout, 'ok\n');
});

test('meshlet --help and --version', async (t) => {
  t.regex((await run(process.execPath, [CLI, '--help'])).stdout, /Usage: meshlet/);
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  t.is((await run(process.execPath, [CLI, '--version'])).stdout.trim(), pkg.version);
  const unknown = (await run(process.execPath, [CLI, 'fly']).catch((e: unknown) => e)) as { code: number; stderr: string };
  t.is(unknown.code, 2);
});

