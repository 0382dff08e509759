import test from 'ava';
import { FrameBoundaries, goingAwayFrame } from '../src/proxy/websocket-frames.ts';

/** A frame with `length` payload bytes, masked or not, as a peer would send it. */
function frame(length: number, masked: boolean): Buffer {
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0));
  head[0] = 0x82;
  head[1] = (masked ? 0x80 : 0) | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) head.writeUInt16BE(length, 2);
  if (lengthBytes === 8) head.writeBigUInt64BE(BigInt(length), 2);
  return Buffer.concat([head, Buffer.alloc(length, 7)]);
}

test('frame boundaries are found whatever the frame sizes and however the stream is split', (t) => {
  const stream = Buffer.concat([frame(0, false), frame(5, true), frame(200, false), frame(70_000, true), frame(125, false)]);
  for (const step of [1, 2, 3, 7, 1000, stream.length]) {
    const frames = new FrameBoundaries();
    const boundaries: number[] = [];
    for (let at = 0; at < stream.length; at += step) {
      frames.see(stream.subarray(at, Math.min(stream.length, at + step)));
      if (frames.atBoundary) boundaries.push(Math.min(stream.length, at + step));
    }
    t.true(frames.atBoundary, `split every ${step} bytes`);
    if (step === 1) t.deepEqual(boundaries, [2, 2 + 11, 13 + 204, 217 + 70_014, stream.length]);
  }
});

test('mid-frame is not a boundary', (t) => {
  const frames = new FrameBoundaries();
  frames.see(frame(10, false).subarray(0, 5));
  t.false(frames.atBoundary);
  frames.see(Buffer.from([0x82]));
  t.false(frames.atBoundary, 'half a header');
});

test('the going-away frame is a close frame with code 1001, masked only towards servers', (t) => {
  const toClient = goingAwayFrame(false);
  t.deepEqual([...toClient], [0x88, 2, 0x03, 0xe9]);
  const toServer = goingAwayFrame(true);
  t.is(toServer[0], 0x88);
  t.is(toServer[1], 0x82);
  const mask = toServer.subarray(2, 6);
  t.is(((toServer[6]! ^ mask[0]!) << 8) | (toServer[7]! ^ mask[1]!), 1001);
});
