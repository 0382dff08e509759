#!/usr/bin/env node
// The CLI, compiled from src/ into dist/ by `npm run build` (run by `npm ci` and `npm test`):
// plain JavaScript starts faster and resides in ~25 MB less memory than type-stripped sources.

// meshlet's V8 sizing (src/v8-sizing.ts) must be set before V8 starts, so `meshlet run` validates its
// config here, then replaces itself (same PID, same signals) with Node started with the flags and handed
// the validated config: the new process image also sheds the YAML parser and the schema (idle RSS
// ~91 -> ~79 MB). A flag the user set wins; when every flag is set, nothing is re-executed.

// Before anything else runs: on an older Node, meshlet would fail later with an obscure TypeError
// (Promise.withResolvers is Node 22+, process.execve 24+ ...). Say which Node it needs instead.
const NEEDED_MAJOR = 24;
if (Number(process.versions.node.split('.')[0]) < NEEDED_MAJOR) {
  process.stderr.write(`meshlet needs Node.js ${NEEDED_MAJOR} or newer; this is Node.js ${process.versions.node}. From the repository, npm scripts bring Node ${NEEDED_MAJOR} (npm start, npx meshlet).\n`);
  process.exit(1);
}
const { missingV8Flags } = await import('../dist/v8-sizing.js');

const missing = missingV8Flags(process.execArgv, process.env.NODE_OPTIONS ?? '');

// Linux refuses an environment string over 128 KiB (E2BIG), and Node 24.9 aborts on a failed execve
// rather than throwing: a config too large to hand over is loaded again by the new process instead.
const MAX_HANDOVER_BYTES = 64 * 1024;

const { main, RESOLVED_CONFIG_ENV } = await import('../dist/cli.js');
/** @param {string} resolvedConfig */
const reexec = (resolvedConfig) => {
  const argv = [process.execPath, ...missing, ...process.execArgv, ...process.argv.slice(1)];
  const handOver = Buffer.byteLength(resolvedConfig) <= MAX_HANDOVER_BYTES;
  process.execve(process.execPath, argv, handOver ? { ...process.env, [RESOLVED_CONFIG_ENV]: resolvedConfig } : process.env);
};
const canReexec = missing.length > 0 && typeof process.execve === 'function';
process.exitCode = await main(process.argv.slice(2), process.env, canReexec ? { reexec } : {});
