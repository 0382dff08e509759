/**
 * What `meshlet validate` (and `meshlet run`, refusing a config) says about each kind of problem,
 * through the real CLI: exact stderr lines and exit code.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = new URL('../bin/meshlet.js', import.meta.url).pathname;

type Outcome = { code: number | null; stdout: string; stderr: string[] };

/** Runs `meshlet ...args` in `cwd` with only `env`'s MESHLET variables (none from the test's own). */
function meshlet(args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<Outcome> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MESHLET')));
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: options.cwd, env: { ...inherited, ...options.env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr: stderr.split('\n').slice(0, -1) });
    });
  });
}

/** A directory holding `config.yaml` with `yaml` in it. */
async function configDir(yaml: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-validate-'));
  await writeFile(join(dir, 'config.yaml'), yaml);
  return dir;
}

test('an unknown key names the key meant at its level, when one is close', async (t) => {
  const cwd = await configDir(`
servce: { name: planner }
inbound: { timeouts: { idel: 5m } }
upstreams:
  search:
    retries: { retryon: [reset] }
    colour: blue
`);
  t.deepEqual(await meshlet(['validate', '--config', 'config.yaml'], { cwd }), {
    code: 1,
    stdout: '',
    stderr: [
      'service: is required',
      'inbound.timeouts.idel: unknown key, did you mean "idle"?',
      'upstreams.search.retries.retryon: unknown key, did you mean "retryOn"?',
      'upstreams.search.colour: unknown key',
      'servce: unknown key, did you mean "service"?',
    ],
  });
});

test('a bad value is echoed, cut when long, with secrets redacted', async (t) => {
  const cwd = await configDir(`
service: { name: planner }
inbound: { timeouts: { connect: 1 sec } }
upstreams:
  search:
    endpoints: [http://agent:hunter2@127.0.0.1:7000/v1, ${'x'.repeat(100)}]
    retries: { maxRetries: -1 }
  apitoken:
    endpoints: [http://127.0.0.1:7001/v1]
`);
  t.deepEqual(await meshlet(['validate', '--config', 'config.yaml'], { cwd }), {
    code: 1,
    stdout: '',
    stderr: [
      'inbound.timeouts.connect: not a duration (got "1 sec"): use e.g. 250ms, 10s, 5m, or 0',
      'upstreams.search.endpoints.0: not an http:// origin (got "http://agent:[redacted]@127.0.0.1:700…"): use e.g. http://127.0.0.1:8080 (no path)',
      `upstreams.search.endpoints.1: not an http:// origin (got "${'x'.repeat(37)}…"): use e.g. http://127.0.0.1:8080 (no path)`,
      'upstreams.search.retries.maxRetries: must be >= 0 (got -1)',
      // The key names a secret, as in GET /config: the value is not shown at all.
      'upstreams.apitoken.endpoints.0: not an http:// origin (got [redacted]): use e.g. http://127.0.0.1:8080 (no path)',
    ],
  });
});

test("a YAML syntax error is one problem: the file, the library's message and the lines it points at", async (t) => {
  const cwd = await configDir('service:\n  name: planner\n  name: researcher\n');
  t.deepEqual(await meshlet(['validate', '--config', 'config.yaml'], { cwd }), {
    code: 1,
    stdout: '',
    stderr: [
      'config.yaml: invalid YAML: Map keys must be unique at line 3, column 3:',
      '      name: planner',
      '      name: researcher',
      '      ^',
    ],
  });
});

test('a problem an environment variable caused names the variable, in validate and in run', async (t) => {
  const cwd = await configDir('service: { name: planner }\ninbound: { timeouts: { firstByte: soon } }\n');
  const env = { MESHLET__INBOUND__TIMEOUT__IDLE: '5s', MESHLET__INBOUND__TIMEOUTS__CONNECT: '1 sec' };
  const stderr = [
    'inbound.timeouts.connect: not a duration (got "1 sec", from MESHLET__INBOUND__TIMEOUTS__CONNECT): use e.g. 250ms, 10s, 5m, or 0',
    'inbound.timeouts.firstByte: not a duration (got "soon"): use e.g. 250ms, 10s, 5m, or 0',
    'inbound.timeout: unknown key (from MESHLET__INBOUND__TIMEOUT__IDLE), did you mean MESHLET__INBOUND__TIMEOUTS__IDLE?',
  ];
  t.deepEqual(await meshlet(['validate', '--config', 'config.yaml'], { cwd, env }), { code: 1, stdout: '', stderr });
  t.deepEqual(await meshlet(['run', '--config', 'config.yaml'], { cwd, env }), { code: 1, stdout: '', stderr });
});

test('a missing config file is one line naming it', async (t) => {
  const cwd = await configDir('');
  t.deepEqual(await meshlet(['validate', '--config', 'nowhere.yaml'], { cwd }), {
    code: 1,
    stdout: '',
    stderr: [`nowhere.yaml: no such file in ${cwd}`],
  });
  t.deepEqual(await meshlet(['validate', '--config', join(cwd, 'nowhere.yaml')], { cwd }), {
    code: 1,
    stdout: '',
    stderr: [`${join(cwd, 'nowhere.yaml')}: no such file`],
  });
  // Without --config or MESHLET_CONFIG, the default: say how to name another.
  t.deepEqual(await meshlet(['run'], { cwd }), {
    code: 1,
    stdout: '',
    stderr: [`config/meshlet.yaml: no such file in ${cwd}; name one with --config FILE or MESHLET_CONFIG`],
  });
  t.deepEqual(await meshlet(['validate', '--config', cwd], { cwd }), {
    code: 1,
    stdout: '',
    stderr: [`${cwd}: is a directory, not a config file`],
  });
});

test('a valid config prints ok', async (t) => {
  const cwd = await configDir('service: { name: planner }\n');
  t.deepEqual(await meshlet(['validate', '--config', 'config.yaml'], { cwd, env: { MESHLET__INBOUND__TIMEOUTS__IDLE: '2m' } }), {
    code: 0,
    stdout: 'ok\n',
    stderr: [],
  });
});
