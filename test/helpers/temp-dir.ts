/** A fresh directory under the system's temp dir, removed when the test ends. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where cleanups go: a test's context, or a file's `Hooks` for what `test.before` starts. */
export type Teardowns = { teardown(cleanup: () => unknown): void };

/** Teardowns for resources a `test.before` hook starts (ava refuses `t.teardown` in hooks): run them in `test.after.always`. */
export class Hooks implements Teardowns {
  private readonly cleanups: (() => unknown)[] = [];
  teardown(cleanup: () => unknown): void {
    this.cleanups.push(cleanup);
  }
  async run(): Promise<void> {
    for (const cleanup of this.cleanups.reverse()) await cleanup();
  }
}

export async function tempDir(t: Teardowns, prefix = 'meshlet-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
