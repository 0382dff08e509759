/**
 * "Did you mean ...?" for unknown config keys: the keys the schema allows where the unknown one
 * was found, and the closest of them by edit distance.
 */

type SchemaNode = { _zod: { def: Record<string, unknown> & { type: string } } };

/**
 * The keys the schema allows in the object at `path` (`['upstreams', 'search']` reaches the
 * upstream schema through the record), in schema order; none when no object is there.
 */
export function knownKeysAt(schema: unknown, path: readonly PropertyKey[], from = 0): string[] {
  const def = (schema as SchemaNode)._zod.def;
  switch (def.type) {
    case 'object': {
      const shape = def.shape as Record<string, unknown>;
      if (from === path.length) return Object.keys(shape);
      const child = shape[String(path[from])];
      return child === undefined ? [] : knownKeysAt(child, path, from + 1);
    }
    case 'record':
      return from === path.length ? [] : knownKeysAt(def.valueType, path, from + 1);
    case 'array':
      return from === path.length ? [] : knownKeysAt(def.element, path, from + 1);
    case 'union':
      for (const option of def.options as unknown[]) {
        const keys = knownKeysAt(option, path, from);
        if (keys.length > 0) return keys;
      }
      return [];
    case 'pipe':
      return knownKeysAt(def.in, path, from);
    default:
      // optional, default, prefault, nullable...: wrappers around the schema that has the keys.
      return def.innerType === undefined ? [] : knownKeysAt(def.innerType, path, from);
  }
}

/**
 * The known key closest to `key`, ignoring case, when it is close enough to be the key meant: at
 * most one edit (insertion, deletion, substitution, swap of neighbours) per three characters, so
 * that `drainTimout` finds `drainTimeout` but `foo` finds nothing. Ties go to the first in order.
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const wanted = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const distance = editDistance(wanted, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Optimal string alignment distance: Levenshtein plus the swap of two neighbours as one edit. */
export function editDistance(a: string, b: string): number {
  // Three rows suffice: a swap looks two rows back.
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  let current = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const substitution = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + substitution);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) distance = Math.min(distance, before[j - 2]! + 1);
      current[j] = distance;
    }
    [before, previous, current] = [previous, current, before];
  }
  return previous[b.length]!;
}
