/**
 * The agents and skills in the registry, as GET /registry lists them and `meshlet agents` prints them:
 * one entry per service (its instances share a card) and one per skill, with the upstream name that
 * reaches any agent that has it.
 */
import type { Instance } from './registry.ts';
import { skillUpstreamName } from './skills.ts';

export type AgentView = { service: string; name: string | null; description: string | null; instances: number; skills: string[] };
export type SkillView = { id: string; upstream: string | null; services: string[]; instances: number };

/** One entry per service, in the order given. Instances without a card show as agents without skills. */
export function agentsOf(instances: readonly Instance[]): AgentView[] {
  const byService = new Map<string, AgentView>();
  for (const { service, agent } of instances) {
    let view = byService.get(service);
    if (view === undefined) byService.set(service, (view = { service, name: null, description: null, instances: 0, skills: [] }));
    view.instances++;
    if (agent === undefined) continue;
    view.name ??= agent.name;
    view.description ??= agent.description ?? null;
    for (const skill of agent.skills) if (!view.skills.includes(skill.id)) view.skills.push(skill.id);
  }
  return [...byService.values()];
}

/** One entry per skill id, sorted, with `upstream`: the `<skill>.skill` name (null when it has none). */
export function skillsOf(instances: readonly Instance[]): SkillView[] {
  const byId = new Map<string, SkillView>();
  for (const { service, agent } of instances) {
    for (const skill of agent?.skills ?? []) {
      let view = byId.get(skill.id);
      if (view === undefined) byId.set(skill.id, (view = { id: skill.id, upstream: skillUpstreamName(skill.id), services: [], instances: 0 }));
      view.instances++;
      if (!view.services.includes(service)) view.services.push(service);
    }
  }
  return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
}
