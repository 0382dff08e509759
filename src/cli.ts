/**
 * The `meshlet` command: parse arguments, load config, run or validate. Wiring only.
 *
 * The config loader (YAML parser, zod schema) and the sidecar are imported only when needed: the
 * launcher (bin/meshlet.js) validates the config in its first process and re-executes Node with the
 * result, so the process that serves traffic never loads the loader (idle RSS ~91 -> ~79 MB).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { configPath } from './config/path.ts';
import type { MeshletConfig } from './config/schema.ts';

/**
 * The validated config as JSON, handed by the launcher to the process it re-executes. Like the config
 * file it comes from, it is readable by the same user only (/proc/PID/environ).
 */
export const RESOLVED_CONFIG_ENV = 'MESHLET_RESOLVED_CONFIG';

export type MainOptions = {
  /**
   * Replace this process with one that runs `resolvedConfig` (the launcher's re-execution with V8
   * flags); does not return. Absent: run here.
   */
  reexec?: (resolvedConfig: string) => void;
};

const USAGE = `Usage: meshlet <command> [--config FILE] [--admin URL]

Commands:
  run        run the sidecar
  validate   check a config file: prints "ok", or every problem as "<key path>: <message>"
  agents     the agents and skills a running sidecar knows, as a table (from its admin API)
  breakers what-if --upstream NAME --set KEY=VALUE ... [--log FILE ... | --admin URL]
             replay recorded outcomes with candidate breaker settings (meshlet breakers what-if --help)

Options:
  -c, --config FILE   config file (default: $MESHLET_CONFIG, else config/meshlet.yaml)
  --admin URL         the sidecar's admin listener, for agents (default: http://127.0.0.1:15000)
  -h, --help          show this help
  -v, --version       show the version

Environment:
  MESHLET_CONFIG                config file path
  MESHLET__<KEY>__<KEY>=value   override a config key, e.g. MESHLET__INBOUND__PRIMARY=http://127.0.0.1:9000
`;

export async function main(argv: string[], env: NodeJS.ProcessEnv, options: MainOptions = {}): Promise<number> {
  // A tool with options of its own, loaded only when asked for.
  if (argv[0] === 'breakers') return (await import('./what-if/command.ts')).breakersCommand(argv.slice(1), env);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        admin: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = positionals[0];
  if (command === 'agents') {
    const { agentsCommand, DEFAULT_ADMIN } = await import('./agents-command.ts');
    return agentsCommand(values.admin ?? DEFAULT_ADMIN, process.stdout, process.stderr);
  }
  if (command !== 'run' && command !== 'validate') {
    process.stderr.write(command === undefined ? USAGE : `unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  const resolved = env[RESOLVED_CONFIG_ENV];
  if (command === 'run' && resolved !== undefined) {
    delete env[RESOLVED_CONFIG_ENV]; // internal: not for anything this process starts or shows
    return run(JSON.parse(resolved) as MeshletConfig, configPath(values.config, env), env);
  }
  const { loadConfigFile } = await import('./config/load.ts');
  const loaded = await loadConfigFile(configPath(values.config, env), env);
  if (!loaded.ok) {
    process.stderr.write(`${loaded.problems.join('\n')}\n`);
    return 1;
  }
  if (command === 'validate') {
    process.stdout.write('ok\n');
    return 0;
  }
  options.reexec?.(JSON.stringify(loaded.config));
  return run(loaded.config, configPath(values.config, env), env);
}


/**
 * Run until SIGTERM/SIGINT, then drain and exit 0. The handlers go in before anything listens: a
 * signal that arrives while the sidecar is still starting must drain it, not kill it outright.
 * A second signal while draining is Node's default: exit at once.
 */
async function run(config: MeshletConfig, file: string, env: NodeJS.ProcessEnv): Promise<number> {
  const stopped = Promise.withResolvers<string>();
  const onSignal = (signal: string) => stopped.resolve(signal);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const [{ Sidecar }, { installLastResort }] = await Promise.all([import('./sidecar.ts'), import('./last-resort.ts')]);
  // A reload reads the file again, with the same environment overrides; the loader (YAML, zod) is
  // loaded only then.
  const configSource = async () => (await import('./config/load.ts')).loadConfigFile(file, env);
  const sidecar = new Sidecar(config, { configSource, watchFile: file, env });
  process.on('SIGHUP', () => void sidecar.reload('SIGHUP'));
  installLastResort({ logger: sidecar.logger, counter: sidecar.metrics.uncaughtErrors, flush: () => sidecar.flushLogs() });
  // Lines still waiting for a full stdout (the last lifecycle events, a fatal error) get a last chance.
  process.once('exit', () => sidecar.flushLogs());
  try {
    await sidecar.start();
  } catch (error) {
    if ((error as Error).name !== 'ListenError') throw error;
    sidecar.logger.fatal({ err: error }, (error as Error).message);
    process.stderr.write(`meshlet: ${(error as Error).message}\n`);
    return 1;
  }
  const signal = await stopped.promise;
  sidecar.logger.info({ signal }, 'stopping');
  let code = 0;
  try {
    await sidecar.shutdown();
  } catch (error) {
    sidecar.logger.error({ err: error }, 'shutdown failed');
    code = 1;
  }
  // Everything is closed; should anything still hold the event loop open (a handle meshlet does not
  // own), the process exits all the same, within the drain timeout's promise to the orchestrator.
  setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
  return code;
}

/** After shutdown, how long the process may take to exit by itself before it is made to. */
const EXIT_GRACE_MS = 1_000;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

if (import.meta.main) {
  main(process.argv.slice(2), process.env).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`meshlet: ${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
