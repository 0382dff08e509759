/**
 * The local copy of the registry that the request path is served from. Backends push instances in
 * (snapshots, watch events); the cache works out which routable names changed and hands each its new
 * endpoint set (`UpstreamTable.discovered` → `Upstream.setEndpoints`, atomic: attempts in flight keep
 * their endpoint). Routing never reaches the registry: when it is unreachable, nothing here changes and
 * the last known endpoints keep serving.
 *
 * A name is routable for each instance's service and for each of its skills (`<skill>.skill`,
 * skills.ts): both are sets of instances whose addresses become an upstream's endpoints.
 */
import type { UpstreamTable } from '../upstream/table.ts';
import type { Instance } from './registry.ts';
import { skillUpstreamName } from './skills.ts';

/** An instance joined, changed (its address or its agent card) or left. */
export type InstanceChange = (change: 'joined' | 'changed' | 'left', instance: Instance) => void;

export class DiscoveryCache {
  private readonly table: UpstreamTable;
  private readonly onChange: InstanceChange;
  /** Every live instance by id, with its JSON form to tell a change from a renewal. */
  private readonly instances = new Map<string, { instance: Instance; text: string }>();
  /** Instance ids behind each routable name. */
  private readonly members = new Map<string, Set<string>>();
  /** What each name's upstream was last given, so unchanged sets are not pushed again. */
  private readonly pushed = new Map<string, string>();
  private readonly dirty = new Set<string>();
  private flushQueued = false;

  constructor(table: UpstreamTable, onChange: InstanceChange = () => {}) {
    this.table = table;
    this.onChange = onChange;
  }

  get size(): number {
    return this.instances.size;
  }

  /** The live instances, as last learnt. */
  list(): Instance[] {
    return [...this.instances.values()].map((entry) => entry.instance);
  }

  /** Replace everything known with `instances`. */
  snapshot(instances: readonly Instance[]): void {
    const present = new Set<string>();
    for (const instance of instances) {
      present.add(instance.id);
      this.put(instance);
    }
    for (const id of this.instances.keys()) if (!present.has(id)) this.remove(id);
    this.flush();
  }

  put(instance: Instance): void {
    const text = JSON.stringify(instance);
    const old = this.instances.get(instance.id);
    if (old?.text === text) return;
    if (old !== undefined) this.unindex(old.instance);
    this.instances.set(instance.id, { instance, text });
    for (const name of routableNames(instance)) {
      let ids = this.members.get(name);
      if (ids === undefined) this.members.set(name, (ids = new Set()));
      ids.add(instance.id);
      this.dirty.add(name);
    }
    this.queueFlush();
    this.onChange(old === undefined ? 'joined' : 'changed', instance);
  }

  remove(id: string): void {
    const old = this.instances.get(id);
    if (old === undefined) return;
    this.instances.delete(id);
    this.unindex(old.instance);
    this.queueFlush();
    this.onChange('left', old.instance);
  }

  private unindex(instance: Instance): void {
    for (const name of routableNames(instance)) {
      this.members.get(name)?.delete(instance.id);
      this.dirty.add(name);
    }
  }

  /** Watch events come in bursts (one etcd response may carry hundreds): push once per burst. */
  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushQueued = false;
    for (const name of this.dirty) {
      const ids = this.members.get(name) ?? new Set<string>();
      const urls = [...new Set([...ids].map((id) => this.instances.get(id)!.instance.address))].sort();
      if (ids.size === 0) this.members.delete(name);
      const key = urls.join(' ');
      if (this.pushed.get(name) === key) continue;
      this.pushed.set(name, key);
      this.table.discovered(name, urls);
    }
    this.dirty.clear();
  }
}

/** The names an instance can be reached by: its service, and each of its skills. */
function routableNames(instance: Instance): string[] {
  const names = [instance.service];
  for (const skill of instance.agent?.skills ?? []) {
    const name = skillUpstreamName(skill.id);
    if (name !== null) names.push(name);
  }
  return names;
}
