#!/usr/bin/env node
// The CLI, compiled from src/ into dist/ by `npm run build` (run by `npm ci` and `npm test`):
// plain JavaScript starts faster and resides in ~25 MB less memory than type-stripped sources.

// V8's heap sizing is made for browsers and big servers; a sidecar should stay small. Measured with
// 1,000 connections (README, Memory tuning):
// - the young generation is sized for the machine (up to 64 MB semi-spaces on a large one) and a busy
//   proxy grows into all of it: 8 MB semi-spaces took 330 -> 210 MB at no measurable throughput cost;
// - after each full GC the old generation may grow to twice what survived; 20% keeps a proxy whose
//   requests wait on model calls (so everything they hold is promoted) at ~155 instead of ~200 MB, and
//   was no slower (a smaller heap stays in cache).
// Flags must be set before V8 starts, so `meshlet run` validates its config here, then replaces itself
// (same PID, same signals) with Node started with the flags and handed the validated config: the new
// process image also sheds the YAML parser and the schema (idle RSS ~91 -> ~79 MB). A flag the user set
// wins (NODE_OPTIONS, or Node's command line: `node --heap-growing-percent=50 bin/meshlet.js run`, since
// Node refuses that one in NODE_OPTIONS); when every flag is set, nothing is re-executed.
const V8_SIZING = ['--max-semi-space-size=8', '--heap-growing-percent=20'];
const chosen = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
const missing = V8_SIZING.filter((flag) => !chosen.some((arg) => arg.startsWith(flag.slice(0, flag.indexOf('=')))));

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
