/**
 * A fuzz case, built from the run's seed and its index alone: a corpus entry for one listener, mutated,
 * cut into writes, with the point where the client resets.
 */
import { CORPUS, type CaseContext, type CorpusEntry } from './corpus.ts';
import { mutate, splitPoints } from './mutate.ts';
import { Prng, caseSeed } from './prng.ts';
import { RESET_POINTS, type ResetPoint } from './client.ts';

export type FuzzCase = {
  index: number;
  seed: number;
  listener: 'inbound' | 'outbound';
  entry: CorpusEntry;
  routable: boolean;
  mutations: string[];
  bytes: Buffer;
  splits: number[];
  reset: ResetPoint;
  resetAt: number;
};

export function buildCase(runSeed: number, index: number): FuzzCase {
  const seed = caseSeed(runSeed, index);
  const rng = new Prng(seed);
  const listener = rng.chance(0.5) ? 'inbound' : 'outbound';
  const host = listener === 'inbound' ? rng.pick(['agent', 'primary.local:8080']) : rng.pick(['echo', 'echo', 'echo', 'echo:80', 'ECHO', 'nosuch', '127.0.0.1']);
  let n = 0;
  const ctx: CaseContext = { host, id: () => `fz-${index}-${n++}`, smuggledId: () => `smuggled-${index}-${n++}` };
  const entry = rng.pick(CORPUS);
  const mutated = mutate(entry.build(ctx), rng, () => rng.pick(CORPUS).build(ctx));
  const bytes = Buffer.from(mutated.text, 'latin1');
  return {
    index,
    seed,
    listener,
    entry,
    routable: listener === 'inbound' || host.toLowerCase().startsWith('echo'),
    mutations: mutated.applied,
    bytes,
    splits: splitPoints(bytes.length, rng),
    reset: rng.pick(RESET_POINTS),
    resetAt: rng.below(bytes.length),
  };
}

/** The case as a reproducer: what was sent, how, and the command that replays it. */
export function describeCase(c: FuzzCase, runSeed: number): string {
  const seedText = seedToText(runSeed);
  const text = c.bytes.toString('latin1');
  const shown = JSON.stringify(text.length > 700 ? `${text.slice(0, 700)}...(${text.length} bytes)` : text);
  const how = c.reset === 'mid-send' ? `reset after ${c.resetAt} bytes` : `reset ${c.reset}`;
  return (
    `case ${c.index} (seed ${seedText}): ${c.listener} "${c.entry.name}"${c.mutations.length ? ` + ${c.mutations.join(', ')}` : ''}, ` +
    `${how}, writes cut at [${c.splits.join(',')}]\n    bytes: ${shown}\n    replay: FUZZ_SEED=${seedText} FUZZ_ONLY=${c.index} npx ava test/fuzz.test.ts`
  );
}

export function seedToText(seed: number): string {
  return `0x${seed.toString(16).padStart(8, '0')}`;
}
