/**
 * `--write`: the candidate spliced into the config file's text (values replaced in place, keys added
 * to the map they belong in, flow or block), validated before anything is written.
 */
import test from 'ava';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeCandidate } from '../src/what-if/write-config.ts';

const CONFIG = `service: { name: planner }   # who we are
defaults:
  circuitBreaker:
    volumeThreshold: 20          # a quiet fleet
upstreams:
  search:
    endpoints: [http://127.0.0.1:7000]
    circuitBreaker:
      errorThresholdPercentage: 50   # agreed with the search team
      window: 10s
  tools:
    endpoints: [http://127.0.0.1:7001]

registry: { backend: static }
`;

async function written(upstream: string, overlay: Record<string, unknown>) {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-write-'));
  await writeFile(join(dir, 'in.yaml'), CONFIG);
  const result = await writeCandidate(join(dir, 'in.yaml'), join(dir, 'out.yaml'), upstream, overlay, {});
  const text = await readFile(join(dir, 'out.yaml'), 'utf8').catch(() => null);
  return { result, text };
}

test('a value that is there is replaced in place, its comment kept; a new key joins its block map at its indent', async (t) => {
  const { result, text } = await written('search', { circuitBreaker: { errorThresholdPercentage: 30, resetTimeout: '1m', failureOn: ['reset', '503'] } });
  t.deepEqual(result, {
    ok: true,
    value: ['upstreams.search.circuitBreaker.errorThresholdPercentage', 'upstreams.search.circuitBreaker.resetTimeout', 'upstreams.search.circuitBreaker.failureOn'],
  });
  t.is(
    text,
    CONFIG.replace('errorThresholdPercentage: 50   # agreed', 'errorThresholdPercentage: 30   # agreed').replace(
      '      window: 10s\n',
      '      window: 10s\n      resetTimeout: 1m\n      failureOn: [reset, "503"]\n',
    ),
  );
});

test('an upstream without the map gets it, inline', async (t) => {
  const { text } = await written('tools', { circuitBreaker: { window: '5s' } });
  t.is(text, CONFIG.replace('    endpoints: [http://127.0.0.1:7001]\n', '    endpoints: [http://127.0.0.1:7001]\n    circuitBreaker: { window: 5s }\n'));
});

test('a result meshlet validate would refuse is not written', async (t) => {
  const { result, text } = await written('search', { circuitBreaker: { window: 'soon' } });
  t.deepEqual(result, { ok: false, problems: ['upstreams.search.circuitBreaker.window: not a duration (got "soon"): use e.g. 250ms, 10s, 5m, or 0'] });
  t.is(text, null, 'nothing written');
});
