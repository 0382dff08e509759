/**
 * The etcd backend on a 3-member cluster that loses a member: each member in turn is killed (-9) and
 * comes back, so that whichever member served a sidecar's watch and lease keepalive was lost once.
 */
import test from 'ava';
import { request } from 'undici';
import { startEtcd } from './helpers/etcd.ts';
import { startSidecar } from './helpers/with-sidecar.ts';

test('a 3-member cluster losing any one member: registrations hold, the watch carries on, traffic flows', async (t) => {
  const etcd = await startEtcd(t, 3);
  const agent = (name: string) =>
    startSidecar(t, {
      upstream: (_req, res) => res.end(name),
      config: () => ({ service: { name }, registry: { backend: 'etcd', ttl: '1s', etcd: { endpoints: etcd.endpoints, prefix: '/cluster/' } } }),
    });
  const researcher = await agent('researcher');
  await researcher.logs.next((l) => l.msg === 'registered');
  const planner = await agent('planner');
  await planner.logs.next((l) => l.msg === 'registry loaded');

  for (const [i, member] of etcd.members.entries()) {
    await member.stop('SIGKILL');
    const latecomer = await agent(`latecomer-${i}`);
    await latecomer.logs.next((l) => l.msg === 'registered');
    await planner.logs.next((l) => l.msg === 'instance joined' && l.service === `latecomer-${i}`);
    const res = await request(`${planner.outbound}/x`, { headers: { host: `latecomer-${i}` } });
    t.is(await res.body.text(), `latecomer-${i}`);
    t.is(await (await request(`${planner.outbound}/x`, { headers: { host: 'researcher' } })).body.text(), 'researcher');
    await member.start();
  }
  t.deepEqual(researcher.logs.lines.filter((l) => String(l.msg).startsWith('registration lease lost')), []);
  t.like((await (await request(`${researcher.admin}/registry`)).body.json()) as object, { registration: { state: 'registered' } });
  t.true(planner.logs.lines.every((l) => l.msg !== 'instance left'), 'no instance dropped out meanwhile');
});
