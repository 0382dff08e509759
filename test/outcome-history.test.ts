/**
 * The outcome history's bounds (count, age, memory) under a million outcomes, what it keeps, what
 * GET /breakers reports of it, and POST /breakers/NAME/what-if's answers to bad requests.
 */
import test from 'ava';
import { request } from 'undici';
import { FAILED, OutcomeHistory, REFUSED, SUCCEEDED } from '../src/resilience/outcome-history.ts';
import { startChaos } from './helpers/chaos.ts';
import { FakeClock } from './helpers/fake-clock.ts';
import { startSidecar } from './helpers/with-sidecar.ts';

const LABELS = ['success', '503', 'rejected'];

function fill(history: OutcomeHistory, clock: FakeClock, count: number, everyMs: number): void {
  for (let i = 0; i < count; i++) {
    clock.advance(everyMs);
    const kind = i % 10 === 0 ? FAILED : i % 10 === 1 ? REFUSED : SUCCEEDED;
    history.add(clock.now(), kind, LABELS[kind]!, i % 100);
  }
}

test('a million outcomes: the history keeps the last maxEntries, in 14 bytes each, oldest first', (t) => {
  const clock = new FakeClock();
  const history = new OutcomeHistory('search', { maxAge: 15 * 60_000, maxEntries: 100_000 }, clock);
  const arrayBuffers = process.memoryUsage().arrayBuffers;
  fill(history, clock, 1_000_000, 0.5); // 500 s: within maxAge, so the count bounds it
  t.like(history.describe(), { entries: 100_000, capacity: 100_000, bytes: 1_400_000 });
  t.true(process.memoryUsage().arrayBuffers - arrayBuffers < 2_000_000, 'no more memory than its columns');
  const snapshot = history.snapshot(null);
  t.is(snapshot.ends.length, 100_000);
  t.is(snapshot.ends[0], clock.now() - 99_999 * 0.5, 'the oldest kept is the 900,001st');
  t.is(snapshot.ends.at(-1), clock.now());
  t.true(snapshot.ends.every((end, i) => i === 0 || end > snapshot.ends[i - 1]!), 'in time order across the ring');
  t.is(snapshot.labelTable[snapshot.labels.at(-1)!], LABELS[snapshot.kinds.at(-1)!]);
  t.is(snapshot.latencies.at(-1), 999_999 % 100);
});

test('a million outcomes over 1,000 s: the history keeps the last maxAge, and its memory grows by doubling to fit', (t) => {
  const clock = new FakeClock();
  const history = new OutcomeHistory('search', { maxAge: 15 * 60_000, maxEntries: 10_000_000 }, clock);
  fill(history, clock, 1_000_000, 1);
  const described = history.describe();
  t.is(described.entries, 900_001, 'the last 15 minutes, at 1 ms apart');
  t.is(described.capacity, 1024 * 2 ** 10);
  t.is(described.bytes, 1024 * 2 ** 10 * 14);
  t.is(history.snapshot(null).ends[0], clock.now() - 900_000);
  clock.advance(20 * 60_000);
  t.is(history.describe().entries, 0, 'outcomes age out without new ones');
});

test('maxEntries 0 keeps nothing; a sidecar reports each history in GET /breakers', async (t) => {
  const off = new OutcomeHistory('x', { maxAge: 0, maxEntries: 0 }, new FakeClock());
  off.add(1, SUCCEEDED, 'success', 1);
  t.like(off.describe(), { entries: 0, bytes: 0 });
  const chaos = await startChaos(t);
  const fixture = await startSidecar(t, { config: () => ({ upstreams: { chaos: { endpoints: [chaos.url] } }, telemetry: { outcomeHistory: { maxEntries: 5000 } } }) });
  for (let i = 0; i < 3; i++) await (await request(`${fixture.outbound}/`, { headers: { host: 'chaos' } })).body.text();
  const body = (await (await request(`${fixture.admin}/breakers`)).body.json()) as { outcomeHistory: { bytes: number; upstreams: { upstream: string; entries: number; maxEntries: number }[] } };
  t.like(body.outcomeHistory.upstreams.find((u) => u.upstream === 'chaos'), { entries: 3, maxEntries: 5000 });
  t.true(body.outcomeHistory.bytes > 0);
});

test('POST /breakers/NAME/what-if: unknown upstream 404, a body that is not JSON 400, bad settings 422 in meshlet validate words', async (t) => {
  const chaos = await startChaos(t);
  const fixture = await startSidecar(t, { config: () => ({ upstreams: { chaos: { endpoints: [chaos.url] } } }) });
  const post = async (path: string, body: string) => {
    const res = await request(`${fixture.admin}${path}`, { method: 'POST', body });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  };
  t.like(await post('/breakers/nobody/what-if', '{}'), { status: 404, body: { error: 'no upstream "nobody"' } });
  t.like(await post('/breakers/chaos/what-if', 'window=5s'), { status: 400 });
  t.deepEqual(await post('/breakers/chaos/what-if', '{"circuitBreaker":{"window":"5 s","volumeThreshold":-1}}'), {
    status: 422,
    body: {
      problems: [
        'upstreams.chaos.circuitBreaker.volumeThreshold: must be >= 0 (got -1)',
        'upstreams.chaos.circuitBreaker.window: not a duration (got "5 s"): use e.g. 250ms, 10s, 5m, or 0',
      ],
    },
  });
  const empty = await post('/breakers/chaos/what-if', '');
  t.like(empty, { status: 200, body: { upstream: 'chaos', outcomes: { total: 0 } } });
  const primary = await post('/breakers/primary/what-if', '{"circuitBreaker":{"enabled":true}}');
  t.like(primary, { status: 200, body: { inForce: { settings: null }, candidate: { settings: { volumeThreshold: 20 } } } }, 'the primary has no breaker by default: what if it had one');
});
