/**
 * `meshlet agents [--admin URL]`: the agents and skills a running sidecar knows, read from its admin
 * API (GET /registry) and printed as two tables.
 */
import type { AgentView, SkillView } from './discovery/agents-view.ts';

export const DEFAULT_ADMIN = 'http://127.0.0.1:15000';

type RegistryReply = { backend: string; reachable: boolean; agents: AgentView[]; skills: SkillView[] };

/** Print the tables to `out`; 0, or 1 with the reason on `err` when the sidecar cannot be asked. */
export async function agentsCommand(admin: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let reply: RegistryReply;
  try {
    const res = await fetch(new URL('/registry', admin), { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`GET /registry answered ${res.status}`);
    reply = (await res.json()) as RegistryReply;
  } catch (error) {
    err.write(`meshlet agents: cannot read ${admin}/registry: ${(error as Error).message}\n`);
    return 1;
  }
  out.write(formatAgents(reply));
  return 0;
}

export function formatAgents(reply: RegistryReply): string {
  const agents = table(
    ['SERVICE', 'AGENT', 'INSTANCES', 'SKILLS', 'DESCRIPTION'],
    reply.agents.map((a) => [a.service, a.name ?? '-', String(a.instances), a.skills.join(', ') || '-', a.description ?? '']),
  );
  const skills = table(
    ['SKILL', 'HOST NAME', 'AGENTS', 'INSTANCES'],
    reply.skills.map((s) => [s.id, s.upstream ?? '(none: not a host name)', s.services.join(', '), String(s.instances)]),
  );
  const note = reply.reachable ? '' : `\n(the ${reply.backend} registry is unreachable: this is what the sidecar last knew)\n`;
  return `${agents}\n${reply.skills.length > 0 ? skills : 'No agent has published skills.\n'}${note}`;
}

/** Columns padded to their widest cell; the last column is not padded. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}
