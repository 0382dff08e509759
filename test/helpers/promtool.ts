/**
 * Prometheus's own tools (Debian's `prometheus` package, installed by .ci/run): `promtool` to lint a
 * scrape and check and unit-test alert rules, `prometheus` for the dashboard test.
 */
import { spawn } from 'node:child_process';

export type ToolResult = { code: number | null; output: string };

/** Run `promtool ...args`, feeding it `input` on stdin; resolves with its exit code and everything it printed. */
export function promtool(args: string[], input = ''): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    child.on('error', (error) => reject(new Error(`promtool: ${error.message} (apt-get install prometheus; .ci/run does)`)));
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(input);
  });
}
