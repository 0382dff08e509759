/**
 * A2A agent cards. When the primary serves one at `/.well-known/agent-card.json`, meshlet reads it
 * each time it registers: its name, description, skills and capabilities are published with the
 * registration (so that callers can find "an agent with skill S"), and the card itself is served on
 * the inbound listener with its `url` pointing at meshlet's registered address instead of the
 * primary's, which other hosts cannot reach.
 */
import { request } from 'node:http';
import type { AgentSkill, AgentSummary } from './registry.ts';

export const AGENT_CARD_PATH = '/.well-known/agent-card.json';

/** Larger cards are ignored: a card travels in every registry entry and every watcher's cache. */
const MAX_CARD_BYTES = 256 * 1024;
const MAX_SKILLS = 100;
const MAX_TEXT = 1024;

export type AgentCard = Record<string, unknown> & { name: string };

/** The card the inbound listener serves, as JSON bytes; null while there is none (requests pass to the primary). */
export class PublishedCard {
  body: Buffer | null = null;
}

/** GET the primary's card; null when it serves none (or not a card, or not in time). */
export function fetchAgentCard(primary: string, timeoutMs: number): Promise<AgentCard | null> {
  const { promise, resolve } = Promise.withResolvers<AgentCard | null>();
  const req = request(new URL(AGENT_CARD_PATH, primary), {
    headers: { accept: 'application/json', 'user-agent': 'meshlet', connection: 'close' },
    agent: false,
    signal: AbortSignal.timeout(timeoutMs),
  });
  req.on('response', (res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_CARD_BYTES) return void res.destroy();
      chunks.push(chunk);
    });
    res.on('end', () => resolve(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300 ? parseCard(Buffer.concat(chunks)) : null));
    res.on('close', () => resolve(null)); // cut short, or over the size limit; no-op after 'end'
  });
  req.on('error', () => resolve(null));
  req.end();
  return promise;
}

function parseCard(body: Buffer): AgentCard | null {
  try {
    const card = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof card !== 'object' || card === null || Array.isArray(card)) return null;
    return typeof (card as { name?: unknown }).name === 'string' ? (card as AgentCard) : null;
  } catch {
    return null;
  }
}

/** What is published with the registration: name, description, skills and capabilities. */
export function summarize(card: AgentCard): AgentSummary {
  const summary: AgentSummary = { name: text(card.name)!, skills: [] };
  const description = text(card.description);
  if (description !== undefined) summary.description = description;
  if (Array.isArray(card.skills)) {
    for (const skill of card.skills.slice(0, MAX_SKILLS) as Record<string, unknown>[]) {
      if (typeof skill !== 'object' || skill === null || typeof skill.id !== 'string') continue;
      const published: AgentSkill = { id: skill.id.slice(0, MAX_TEXT) };
      const name = text(skill.name);
      const about = text(skill.description);
      if (name !== undefined) published.name = name;
      if (about !== undefined) published.description = about;
      if (Array.isArray(skill.tags)) published.tags = skill.tags.filter((tag): tag is string => typeof tag === 'string').slice(0, 20);
      summary.skills.push(published);
    }
  }
  if (typeof card.capabilities === 'object' && card.capabilities !== null) summary.capabilities = card.capabilities as Record<string, unknown>;
  return summary;
}

/**
 * The card as callers must see it: `url` (and each `additionalInterfaces` entry on the same origin)
 * moved to `address`, meshlet's registered inbound address, with the path kept.
 */
export function rewriteCard(card: AgentCard, address: string): AgentCard {
  const rewritten: AgentCard = { ...card };
  const origin = typeof card.url === 'string' ? URL.parse(card.url)?.origin : undefined;
  if (typeof card.url === 'string') rewritten.url = moved(card.url, address);
  if (Array.isArray(card.additionalInterfaces)) {
    rewritten.additionalInterfaces = card.additionalInterfaces.map((entry: unknown) => {
      const url = (entry as { url?: unknown } | null)?.url;
      if (typeof url !== 'string' || URL.parse(url)?.origin !== origin) return entry;
      return { ...(entry as object), url: moved(url, address) };
    });
  }
  return rewritten;
}

function moved(url: string, address: string): string {
  const parsed = URL.parse(url);
  if (parsed === null) return address;
  return new URL(`${parsed.pathname}${parsed.search}`, address).href;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value.slice(0, MAX_TEXT) : undefined;
}
