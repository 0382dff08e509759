/**
 * `npm run soak` (bench/soak.ts) on a tiny budget, so that the script cannot rot between the times
 * someone runs it for real: it must start meshlet, drive every scenario, print its table and pass.
 */
import { execFile } from 'node:child_process';
import test from 'ava';

const SOAK = new URL('../bench/soak.ts', import.meta.url).pathname;

test('a short soak runs every scenario, prints the table and passes', async (t) => {
  // A settle of 6 s: meshlet's pooled upstream connections idle out after 3 s (the primary's 5 s less 2 s), and the descriptor
  // check rightly counts them until then. 4 clients only: the suite's timing tests (paced.test.ts)
  // run alongside, and 8 clients pushing 1 MiB bodies made them miss their marks.
  const args = [SOAK, '--duration', '2', '--settle', '6', '--clients', '4'];
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = execFile(process.execPath, args, { timeout: 40_000 }, (_error, stdout) => resolve({ code: child.exitCode, stdout }));
  });
  if (code !== 0) t.log(stdout); // the table and the reasons it failed
  t.regex(stdout, /RSS \(MB\)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+<= [\d.]+\s+ok/);
  t.regex(stdout, /open fds\s+\d+\s+\d+\s+\d+\s+<= \d+\s+ok/);
  for (const scenario of ['keep-alive GET', 'new-connection GET', '1 MiB upload', '1 MiB download', 'reset mid-request', 'reset mid-response', 'WebSocket churn']) {
    t.regex(stdout, new RegExp(`${scenario}.*\\d`), `${scenario} is in the table`);
  }
  t.regex(stdout, /soak: PASS/);
  t.is(code, 0);
});
