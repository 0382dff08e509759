import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { request } from 'undici';
import { parseConfig } from '../src/config/load.ts';
import { advertisedAddress } from '../src/discovery/advertise.ts';
import { skillUpstreamName } from '../src/discovery/skills.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { startSidecar } from './helpers/with-sidecar.ts';

test('the registered address: the inbound listener, a wildcard made reachable, or registry.advertise', (t) => {
  const at = (address: string, port = 15006) => ({ address, port, family: address.includes(':') ? 'IPv6' : 'IPv4' });
  t.is(advertisedAddress(undefined, at('127.0.0.2'), 'sqlite'), 'http://127.0.0.2:15006');
  t.is(advertisedAddress(undefined, at('0.0.0.0'), 'sqlite'), 'http://127.0.0.1:15006');
  t.is(advertisedAddress(undefined, at('::'), 'sqlite'), 'http://127.0.0.1:15006');
  t.not(advertisedAddress(undefined, at('0.0.0.0'), 'etcd'), 'http://0.0.0.0:15006');
  t.is(advertisedAddress(undefined, at('::1'), 'etcd'), 'http://[::1]:15006');
  t.is(advertisedAddress('10.0.0.7', at('0.0.0.0'), 'etcd'), 'http://10.0.0.7:15006');
  t.is(advertisedAddress('10.0.0.7:30006', at('0.0.0.0'), 'etcd'), 'http://10.0.0.7:30006');
  t.is(advertisedAddress('fd00::7', at('::'), 'etcd'), 'http://[fd00::7]:15006');
  t.is(advertisedAddress('[fd00::7]:30006', at('::'), 'etcd'), 'http://[fd00::7]:30006');
  const problems = (advertise: string) => {
    const loaded = parseConfig({ service: { name: 'a' }, registry: { advertise } });
    return loaded.ok ? [] : loaded.problems;
  };
  t.deepEqual(problems('0.0.0.0'), ['registry.advertise: must be an address other hosts can connect to, not a wildcard (got "0.0.0.0")']);
  t.deepEqual(problems('http://10.0.0.7'), ['registry.advertise: must be host or host:port, e.g. 10.0.0.7 or 10.0.0.7:15006 (got "http://10.0.0.7")']);
  t.deepEqual(problems('agent-7.pods.local:15006'), []);
});

test('skill ids become host names: <id>.skill, lower-cased, other characters as one dash', (t) => {
  t.is(skillUpstreamName('summarize'), 'summarize.skill');
  t.is(skillUpstreamName('Summarize Text'), 'summarize-text.skill');
  t.is(skillUpstreamName('  route/planning__v2 '), 'route-planning-v2.skill');
  t.is(skillUpstreamName('日本語'), null);
  t.is(skillUpstreamName('x'.repeat(80))?.length, 63 + '.skill'.length);
});

test('a registry that cannot be opened: not ready, not registered, and /registry says why', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'file'), '');
  const { admin, logs } = await startSidecar(t, {
    config: () => ({ registry: { backend: 'sqlite', sqlite: { path: join(dir, 'file', 'registry.db') } } }),
  });
  await logs.next((l) => l.msg === 'registration failed; retrying');
  const registry = (await (await request(`${admin}/registry`)).body.json()) as { reachable: boolean; unreachable: { reason: string }; registration: { state: string; reason: string } };
  t.false(registry.reachable);
  t.regex(registry.unreachable.reason, /file\/registry\.db: EEXIST/);
  t.is(registry.registration.state, 'failing');
  const readyz = (await (await request(`${admin}/readyz`)).body.json()) as { reasons: string[] };
  t.regex(readyz.reasons.join(), /^not registered: cannot register: EEXIST/);
  const metrics = await (await request(`${admin}/metrics`)).body.text();
  t.regex(metrics, /^meshlet_registry_reachable\{backend="sqlite",service="test-agent"\} 0$/m);
  t.regex(metrics, /^meshlet_registry_registered\{backend="sqlite",service="test-agent"\} 0$/m);
});
