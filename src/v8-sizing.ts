/**
 * V8 flags meshlet's launcher (bin/meshlet.js) starts Node with, and the benchmark gives its Node peers
 * so that they compare code with code. V8's heap sizing is made for browsers and big servers; a sidecar
 * should stay small. Measured with 1,000 connections (bench/README.md, Memory tuning):
 * - the young generation is sized for the machine (up to 64 MB semi-spaces on a large one) and a busy
 *   proxy grows into all of it: 8 MB semi-spaces took 330 -> 210 MB at no measurable throughput cost;
 * - after each full GC the old generation may grow to twice what survived; 20% keeps a proxy whose
 *   requests wait on model calls (so everything they hold is promoted) at ~150 instead of ~180-215 MB,
 *   and was no slower (a smaller heap stays in cache).
 */
export const V8_SIZING: readonly string[] = ['--max-semi-space-size=8', '--heap-growing-percent=20'];

/**
 * The sizing flags the user has not set: a flag already on Node's command line (`execArgv`) or in
 * NODE_OPTIONS wins. (Node refuses --heap-growing-percent in NODE_OPTIONS; it goes on the command line.)
 */
export function missingV8Flags(execArgv: readonly string[], nodeOptions: string): string[] {
  const chosen = [...execArgv, ...nodeOptions.split(/\s+/)];
  return V8_SIZING.filter((flag) => {
    const name = flag.slice(0, flag.indexOf('='));
    return !chosen.some((arg) => arg === name || arg.startsWith(`${name}=`));
  });
}
