/**
 * Agent cards and skill routing (on the sqlite registry): the card published with the registration
 * and served through inbound, `<skill>.skill` names, GET /registry's agents and skills, `meshlet agents`.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { request } from 'undici';
import { parseHead, rawExchange } from './helpers/raw.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { startSidecar, type Fixture } from './helpers/with-sidecar.ts';

const CLI = new URL('../bin/meshlet.js', import.meta.url).pathname;

function card(name: string, skills: string[]): object {
  return {
    name,
    description: `${name} does things`,
    url: 'http://localhost:8080/a2a/v1',
    version: '1.0.0',
    capabilities: { streaming: true },
    skills: skills.map((id) => ({ id, name: id, description: `${id}, well`, tags: ['demo'] })),
    additionalInterfaces: [
      { url: 'http://localhost:8080/a2a/v1', transport: 'JSONRPC' },
      { url: 'https://public.example/a2a', transport: 'HTTP+JSON' },
    ],
  };
}

/** A sidecar called `service` whose primary answers its name, and serves `agentCard` when given. */
function agent(t: ExecutionContext, service: string, path: string, agentCard?: object): Promise<Fixture> {
  return startSidecar(t, {
    upstream: (req, res) => {
      if (req.url === '/.well-known/agent-card.json' && agentCard !== undefined) {
        res.setHeader('content-type', 'application/json');
        return void res.end(JSON.stringify(agentCard));
      }
      res.statusCode = req.url === '/.well-known/agent-card.json' ? 404 : 200;
      res.end(service);
    },
    config: () => ({
      service: { name: service },
      inbound: { healthCheck: { unhealthyThreshold: 1 } },
      registry: { backend: 'sqlite', ttl: '1s', sqlite: { path, pollInterval: '50ms' } },
      defaults: { loadBalancer: { policy: 'round-robin' } }, // so that the balance is exact
    }),
  });
}

async function text(url: string, host?: string): Promise<string> {
  const res = await request(url, host === undefined ? {} : { headers: { host } });
  return `${res.statusCode} ${await res.body.text()}`;
}

test('the agent card is published with the registration and served through inbound with its url moved to meshlet', async (t) => {
  const path = join(await tempDir(t), 'registry.db');
  const researcher = await agent(t, 'researcher', path, card('Researcher', ['web-search', 'Summarize Text']));
  await researcher.logs.next((l) => l.msg === 'registered');
  const planner = await agent(t, 'planner', path);
  await planner.logs.next((l) => l.msg === 'registry loaded');

  const served = (await (await request(`${researcher.inbound}/.well-known/agent-card.json`)).body.json()) as { url: string; additionalInterfaces: { url: string }[]; skills: unknown[] };
  t.is(served.url, `${researcher.inbound}/a2a/v1`);
  t.deepEqual(served.additionalInterfaces.map((i) => i.url), [`${researcher.inbound}/a2a/v1`, 'https://public.example/a2a']);
  t.is(served.skills.length, 2);

  const registry = (await (await request(`${planner.admin}/registry`)).body.json()) as { agents: unknown[]; skills: unknown[]; instances: { service: string; agent?: object }[] };
  t.deepEqual(registry.agents, [
    { service: 'planner', name: null, description: null, instances: 1, skills: [] },
    { service: 'researcher', name: 'Researcher', description: 'Researcher does things', instances: 1, skills: ['web-search', 'Summarize Text'] },
  ]);
  t.deepEqual(registry.skills, [
    { id: 'Summarize Text', upstream: 'summarize-text.skill', services: ['researcher'], instances: 1 },
    { id: 'web-search', upstream: 'web-search.skill', services: ['researcher'], instances: 1 },
  ]);
  t.like(registry.instances.find((i) => i.service === 'researcher')!.agent, { name: 'Researcher', capabilities: { streaming: true } });
  // A primary without a card: the path is the primary's, as any other.
  t.is(await text(`${planner.inbound}/.well-known/agent-card.json`), '404 planner');
});

test('"any healthy agent with skill S" is the upstream <s>.skill, balanced across the agents that have it', async (t) => {
  const path = join(await tempDir(t), 'registry.db');
  const researcher = await agent(t, 'researcher', path, card('Researcher', ['summarize', 'web-search']));
  const writer = await agent(t, 'writer', path, card('Writer', ['summarize']));
  await Promise.all([researcher, writer].map((a) => a.logs.next((l) => l.msg === 'registered')));
  const planner = await agent(t, 'planner', path);
  await planner.logs.next((l) => l.msg === 'registry loaded');

  const answers = [];
  for (let i = 0; i < 4; i++) answers.push(await text(`${planner.outbound}/go`, 'summarize.skill'));
  t.deepEqual(answers.sort(), ['200 researcher', '200 researcher', '200 writer', '200 writer']);
  t.is(await text(`${planner.outbound}/go`, 'web-search.skill'), '200 researcher');
  // The forward-proxy form works the same.
  const proxied = await rawExchange(Number(new URL(planner.outbound).port), 'GET http://web-search.skill/go HTTP/1.1\r\nHost: web-search.skill\r\nConnection: close\r\n\r\n', { end: false });
  t.like(parseHead(proxied), { status: 200, body: 'researcher' });

  writer.upstream.healthStatus = 503; // unhealthy: withdrawn, so no longer "an agent with skill S"
  await planner.logs.next((l) => l.msg === 'instance left' && l.service === 'writer');
  for (let i = 0; i < 3; i++) t.is(await text(`${planner.outbound}/go`, 'summarize.skill'), '200 researcher');
  const unknown = await request(`${planner.outbound}/go`, { headers: { host: 'juggling.skill' } });
  t.is(unknown.headers['x-meshlet-error'], 'unknown_upstream');
});

test('meshlet agents prints the agents and skills a running sidecar knows', async (t) => {
  const path = join(await tempDir(t), 'registry.db');
  const researcher = await agent(t, 'researcher', path, card('Researcher', ['summarize', 'web-search']));
  await researcher.logs.next((l) => l.msg === 'registered');
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'agents', '--admin', researcher.admin]);
  const lines = stdout.split('\n');
  t.regex(lines[0]!, /^SERVICE\s+AGENT\s+INSTANCES\s+SKILLS\s+DESCRIPTION$/);
  t.regex(lines[1]!, /^researcher\s+Researcher\s+1\s+summarize, web-search\s+Researcher does things$/);
  t.true(lines.some((line) => /^summarize\s+summarize\.skill\s+researcher\s+1$/.test(line)), stdout);
  t.true(lines.some((line) => /^web-search\s+web-search\.skill\s+researcher\s+1$/.test(line)), stdout);

  const failed = await promisify(execFile)(process.execPath, [CLI, 'agents', '--admin', 'http://127.0.0.1:1']).catch((error: unknown) => error as { code: number; stderr: string });
  t.like(failed, { code: 1 });
  t.regex((failed as { stderr: string }).stderr, /^meshlet agents: cannot read http:\/\/127\.0\.0\.1:1\/registry/);
});
