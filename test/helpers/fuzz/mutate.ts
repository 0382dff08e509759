/**
 * The mutation engine. Works on latin1 strings (one character per byte), so every byte value can
 * appear, and each mutation is named in the case's description for the reproducer.
 */
import type { Prng } from './prng.ts';

/** Fragments that matter to an HTTP/1.1 parser: separators, framing words, numbers at the edges. */
const INTERESTING = [
  '\r\n', '\n', '\r', '\r\n\r\n', ' ', '\t', ':', ';', ',', '\x00', '\x7f', '\xff', '0', '-1', '00000000000000000001',
  'chunked', 'Transfer-Encoding: chunked\r\n', 'Content-Length: 5\r\n', 'Content-Length: 0\r\n', 'Host: x\r\n',
  'Connection: close\r\n', 'Connection: keep-alive, Upgrade\r\n', 'Upgrade: websocket\r\n', 'Expect: 100-continue\r\n',
  'HTTP/1.1', 'HTTP/1.0', ' HTTP/1.1\r\n', '0\r\n\r\n', 'GET / HTTP/1.1\r\n', '%00', '?', '#', '/../', 'http://echo',
];

const LINE_ENDINGS = ['\r\n', '\n', '\r', '\n\r', '\r\r\n', ' \r\n'];

export type Mutation = { name: string; apply: (text: string, rng: Prng, other: () => string) => string };

/** A span [start, end) of `text`, short more often than long. */
function span(text: string, rng: Prng): [number, number] {
  const start = rng.below(text.length + 1);
  const length = rng.chance(0.8) ? rng.between(1, 8) : rng.between(1, 256);
  return [start, Math.min(text.length, start + length)];
}

function randomByte(rng: Prng): string {
  return String.fromCharCode(rng.below(256));
}

/** Every index where `needle` occurs. */
function occurrences(text: string, needle: string): number[] {
  const found: number[] = [];
  for (let at = text.indexOf(needle); at !== -1 && found.length < 4096; at = text.indexOf(needle, at + 1)) found.push(at);
  return found;
}

export const MUTATIONS: readonly Mutation[] = [
  {
    name: 'flip a byte',
    apply: (text, rng) => {
      if (text.length === 0) return text;
      const at = rng.below(text.length);
      const byte = rng.chance(0.5) ? text.charCodeAt(at) ^ (1 << rng.below(8)) : rng.below(256);
      return text.slice(0, at) + String.fromCharCode(byte) + text.slice(at + 1);
    },
  },
  {
    name: 'insert bytes',
    apply: (text, rng) => {
      const at = rng.below(text.length + 1);
      const insert = rng.chance(0.7) ? rng.pick(INTERESTING) : Array.from({ length: rng.between(1, 8) }, () => randomByte(rng)).join('');
      return text.slice(0, at) + insert + text.slice(at);
    },
  },
  {
    name: 'delete a span',
    apply: (text, rng) => {
      const [start, end] = span(text, rng);
      return text.slice(0, start) + text.slice(end);
    },
  },
  {
    name: 'duplicate a span',
    apply: (text, rng) => {
      const [start, end] = span(text, rng);
      return text.slice(0, end) + text.slice(start, end) + text.slice(end);
    },
  },
  {
    name: 'duplicate a header line',
    apply: (text, rng) => {
      const starts = occurrences(text, '\r\n').map((at) => at + 2);
      if (starts.length === 0) return text;
      const start = rng.pick(starts);
      const end = text.indexOf('\r\n', start);
      if (end <= start) return text;
      const line = text.slice(start, end + 2);
      const value = rng.chance(0.3) ? line.replace(/:\s*.*/, `: ${rng.pick(['0', 'chunked', 'x', '5', 'a, b'])}`) : line;
      return text.slice(0, end + 2) + value + text.slice(end + 2);
    },
  },
  {
    name: 'swap a line ending',
    apply: (text, rng) => {
      const found = [...occurrences(text, '\r\n'), ...occurrences(text, '\n')];
      if (found.length === 0) return text;
      const at = rng.pick(found);
      const length = text.startsWith('\r\n', at) ? 2 : 1;
      return text.slice(0, at) + rng.pick(LINE_ENDINGS) + text.slice(at + length);
    },
  },
  {
    name: 'edit a number',
    // Chunk sizes and Content-Length values: off by one, huge, negative, hex or padded.
    apply: (text, rng) => {
      const numbers = [...text.matchAll(/[0-9a-fA-F]+(?=\r?\n|;)|(?<=Content-Length:\s*)[0-9]+/gi)];
      const match = numbers.length === 0 ? undefined : rng.pick(numbers);
      if (match?.index === undefined) return text;
      const value = Number.parseInt(match[0], 16) || 0;
      const replacement = rng.pick([String(value + 1), String(Math.max(0, value - 1)), '0', 'ffffffff', '-1', ` ${match[0]}`, `${match[0]} `, `0x${match[0]}`, `00${match[0]}`, '1'.repeat(30), `${match[0]};a=b`]);
      return text.slice(0, match.index) + replacement + text.slice(match.index + match[0].length);
    },
  },
  {
    name: 'splice with another entry',
    apply: (text, rng, other) => {
      const second = other();
      return text.slice(0, rng.below(text.length + 1)) + second.slice(rng.below(second.length + 1));
    },
  },
  {
    name: 'truncate',
    apply: (text, rng) => text.slice(0, rng.below(text.length + 1)),
  },
  {
    name: 'pipeline another entry',
    apply: (text, rng, other) => (rng.chance(0.5) ? text + other() : other() + text),
  },
  {
    name: 'change the case of a span',
    apply: (text, rng) => {
      const [start, end] = span(text, rng);
      const piece = text.slice(start, end);
      return text.slice(0, start) + (rng.chance(0.5) ? piece.toUpperCase() : piece.toLowerCase()) + text.slice(end);
    },
  },
];

/**
 * Apply 0-4 mutations (none a quarter of the time, so the corpus itself is sent as written too).
 * `other` builds another corpus entry for splicing and pipelining.
 */
export function mutate(text: string, rng: Prng, other: () => string): { text: string; applied: string[] } {
  const applied: string[] = [];
  const count = rng.chance(0.25) ? 0 : rng.between(1, 4);
  let result = text;
  for (let i = 0; i < count; i++) {
    const mutation = rng.pick(MUTATIONS);
    result = mutation.apply(result, rng, other);
    applied.push(mutation.name);
  }
  return { text: result, applied };
}

/** Up to four cut points, so that the bytes cross the network in several writes. */
export function splitPoints(length: number, rng: Prng): number[] {
  const count = rng.chance(0.4) ? 0 : rng.between(1, 4);
  const points = Array.from({ length: count }, () => rng.between(1, Math.max(1, length - 1)));
  return [...new Set(points)].filter((p) => p > 0 && p < length).sort((a, b) => a - b);
}
