/**
 * POST /breakers/NAME/what-if: the upstream's recent outcomes replayed with its breaker settings in
 * force and with candidate ones (the JSON body, relative to its policy: `{"circuitBreaker":
 * {"errorThresholdPercentage": 30, "window": "5s"}}`), side by side. The replay runs in a worker
 * thread, one at a time; the modules it needs (the config loader, the replay) load on first use.
 */
import type { IncomingMessage } from 'node:http';
import type { Upstream } from '../upstream/upstream.ts';
import type { AdminReply } from './server.ts';

/** Where the routes find upstreams. */
export type WhatIfSources = { readonly primary: Upstream; readonly upstreams: { all(): Upstream[] } };

export const WHAT_IF_PATH = /^\/breakers\/([^/?]+)\/what-if(\?.*)?$/;
/** Candidate settings are a few keys: a larger body is a mistake. */
const MAX_BODY_BYTES = 64 * 1024;

/** The route's handler; replays requested meanwhile wait for the one running. */
export function createWhatIfRoute(sources: WhatIfSources): (req: IncomingMessage) => Promise<AdminReply> {
  let queue: Promise<unknown> = Promise.resolve();
  return (req) => {
    const answer = queue.then(() => whatIf(sources, req));
    queue = answer.catch(() => undefined);
    return answer;
  };
}

async function whatIf(sources: WhatIfSources, req: IncomingMessage): Promise<AdminReply> {
  const name = decodeURIComponent(WHAT_IF_PATH.exec(req.url ?? '')?.[1] ?? '');
  const all = [sources.primary, ...sources.upstreams.all()];
  const upstream = all.find((u) => u.name === name);
  const body = await readJson(req);
  if (upstream === undefined) return { status: 404, body: { error: `no upstream "${name}"`, upstreams: all.map((u) => u.name) } };
  if (!body.ok) return { status: 400, body: { error: body.error } };
  if (upstream.history.settings.maxEntries === 0) {
    return { status: 409, body: { error: 'no outcomes are kept (telemetry.outcomeHistory.maxEntries is 0): there is nothing to replay' } };
  }
  const [{ candidateSettings }, { whatIf: replay }] = await Promise.all([import('../what-if/candidate.ts'), import('../resilience/what-if.ts')]);
  const inForce = upstream.breaker?.settings ?? null;
  const candidate = candidateSettings(name, body.value, inForce);
  if (!candidate.ok) return { status: 422, body: { problems: candidate.problems } };
  const history = upstream.history.snapshot(upstream.breaker?.createdAt ?? null);
  return { status: 200, body: await replay(history, inForce, candidate.value) };
}

/** What GET /breakers shows of the outcome histories: entries and bytes per upstream, and in all. */
export function describeHistories(sources: WhatIfSources): object {
  const upstreams = [sources.primary, ...sources.upstreams.all()].map((u) => ({ upstream: u.name, ...u.history.describe() }));
  return { bytes: upstreams.reduce((sum, u) => sum + u.bytes, 0), upstreams };
}

async function readJson(req: IncomingMessage): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > MAX_BODY_BYTES) return { ok: false, error: `the body is over ${MAX_BODY_BYTES} bytes` };
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, error: `the body is not JSON: ${(error as Error).message}` };
  }
}
