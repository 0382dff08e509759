import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'undici';
import { withSidecar } from './helpers/with-sidecar.ts';

test('inbound forwards to the primary and streams the response back', withSidecar, {}, async (t, { inbound, upstream }) => {
  const res = await request(`${inbound}/hello?x=1`);
  t.is(res.statusCode, 200);
  t.is(await res.body.text(), 'ok');
  const seen = upstream.requests.find((r) => r.url === '/hello?x=1');
  t.truthy(seen);
});

test(
  'a multi-megabyte POST arrives intact both ways (hash compared)',
  withSidecar,
  {
    upstream: (req, res) => {
      if (req.url === '/healthz') return void res.end();
      const hash = createHash('sha256');
      req.on('data', (chunk: Buffer) => hash.update(chunk));
      req.on('end', () => {
        res.setHeader('x-body-sha256', hash.digest('hex'));
        res.end(body);
      });
    },
  },
  async (t, { inbound }) => {
    const res = await request(`${inbound}/upload`, { method: 'POST', body });
    t.is(res.statusCode, 200);
    t.is(res.headers['x-body-sha256'], sha256(body));
    const echoed = Buffer.from(await res.body.arrayBuffer());
    t.is(sha256(echoed), sha256(body));
  },
);

const body = randomBytes(8 * 1024 * 1024);
function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
