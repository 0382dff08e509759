/**
 * Watching the config file for changes (a reload trigger beside SIGHUP and POST /reload). The
 * directory is watched, not the file: editors and Kubernetes replace files by renaming (a ConfigMap
 * swaps its `..data` link), which a watch on the old file would miss. Bursts of events (an editor
 * writes, renames, and touches) become one call.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

const SETTLE_MS = 150;

/** Call `onChange` after the file at `path` changed; returns the function that stops watching. */
export function watchConfigFile(path: string, onChange: () => void, onError: (error: Error) => void): () => void {
  const file = basename(path);
  let timer: NodeJS.Timeout | null = null;
  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(resolve(path)), { persistent: false }, (_event, name) => {
      if (name !== null && name !== file && name !== '..data') return;
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = null;
        onChange();
      }, SETTLE_MS);
    });
  } catch (error) {
    onError(error as Error);
    return () => {};
  }
  watcher.on('error', onError);
  return () => {
    if (timer !== null) clearTimeout(timer);
    watcher.close();
  };
}
