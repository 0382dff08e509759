import test from 'ava';
import { spawnSync } from 'node:child_process';
import { classifyUncaught } from '../src/last-resort.ts';

test('socket errors a peer can cause are peer errors; anything else is a bug', (t) => {
  const withCode = (code: string) => Object.assign(new Error(code), { code });
  for (const code of ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ERR_STREAM_PREMATURE_CLOSE', 'HPE_INVALID_METHOD', 'UND_ERR_SOCKET']) {
    t.is(classifyUncaught(withCode(code)), 'peer', code);
  }
  t.is(classifyUncaught(new TypeError('x is undefined')), 'bug');
  t.is(classifyUncaught(withCode('ERR_INVALID_ARG_TYPE')), 'bug');
  t.is(classifyUncaught(undefined), 'bug');
  t.is(classifyUncaught('a string'), 'bug');
});

function runFixture(kind: 'peer' | 'bug') {
  const fixture = new URL('fixtures/last-resort.ts', import.meta.url).pathname;
  const result = spawnSync(process.execPath, [fixture, kind], { encoding: 'utf8', timeout: 10_000 });
  return { status: result.status, lines: result.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('a peer error that escaped its handler is logged and counted, and the process keeps serving', (t) => {
  const { status, lines } = runFixture('peer');
  t.is(status, 0);
  t.is(lines.find((l) => l.level === 40)?.msg, 'a peer error escaped its handler; still serving');
  t.like(lines.at(-1), { msg: 'still serving', peer: 1 });
});

test('a bug flushes the logs and exits 70, crash-only', (t) => {
  const { status, lines } = runFixture('bug');
  t.is(status, 70);
  t.deepEqual(lines.map((l) => l.msg), ['flushed', 'bug: unexpected error, exiting']);
});
