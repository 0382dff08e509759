/**
 * Preloaded into a spawned meshlet (`node --import`): records every module URL under `@opentelemetry/`
 * that the process loads, and writes the list to the file `RECORD_IMPORTS` names when it exits.
 */
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const loaded: string[] = [];
registerHooks({
  load(url, context, nextLoad) {
    if (url.includes('/@opentelemetry/')) loaded.push(url);
    return nextLoad(url, context);
  },
});
process.on('exit', () => writeFileSync(process.env.RECORD_IMPORTS!, loaded.join('\n')));
