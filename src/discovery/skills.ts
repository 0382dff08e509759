/**
 * Routing by skill: "any healthy agent with skill S" is the upstream `<S>.skill`, a name valid as a
 * Host (`curl -H 'Host: summarize.skill' http://127.0.0.1:15001/...`), balanced across every
 * registered instance whose agent card lists a skill with that id.
 *
 * Skill ids are free text in A2A; the label is the id lower-cased, with each run of characters a host
 * name cannot hold turned into one `-` (`Route Planning` → `route-planning.skill`).
 */

export const SKILL_SUFFIX = '.skill';

/** A DNS label holds at most 63 characters (RFC 1035 §2.3.4). */
const MAX_LABEL = 63;
const NOT_IN_LABEL = /[^a-z0-9]+/g;
const EDGE_DASHES = /^-+|-+$/g;

/** The upstream name for skill `id`, or null when nothing of it fits in a host name. */
export function skillUpstreamName(id: string): string | null {
  const label = id.toLowerCase().replace(NOT_IN_LABEL, '-').replace(EDGE_DASHES, '').slice(0, MAX_LABEL).replace(EDGE_DASHES, '');
  return label === '' ? null : `${label}${SKILL_SUFFIX}`;
}
