/** The saved form of a MeshState (toJSON/fromJSON): every resource and the revision. */
import { InvalidResourceError } from '../manifest.js';
import { type Resource, refKey, refToString, resourceRef } from '../resource.js';
import { validateResource } from '../validate.js';

export const STATE_FORMAT = 'meshd-state/v1';

export interface MeshStateJSON {
  format: typeof STATE_FORMAT;
  revision: number;
  resources: Resource[];
}

/**
 * Reads a saved state, validating every resource as if applied anew (the file may come from an
 * older version or a hand edit). Throws InvalidResourceError listing every problem at once.
 */
export function parseSavedState(json: unknown): { revision: number; resources: Resource[] } {
  const problems: string[] = [];
  const j = json as Partial<MeshStateJSON> | null;
  if (j === null || typeof j !== 'object' || j.format !== STATE_FORMAT) {
    throw new InvalidResourceError('saved state unreadable', [`format: must be ${STATE_FORMAT}`]);
  }
  if (typeof j.revision !== 'number' || !Number.isSafeInteger(j.revision) || j.revision < 0) {
    problems.push('revision: must be a non-negative integer');
  }
  if (!Array.isArray(j.resources)) problems.push('resources: must be a list');
  const resources: Resource[] = [];
  const seen = new Set<string>();
  (Array.isArray(j.resources) ? j.resources : []).forEach((raw: unknown, i) => {
    const result = validateResource(raw);
    if (!result.ok) {
      for (const e of result.errors)
        problems.push(`resources[${i}]${e.path ? `.${e.path}` : ''}: ${e.message}`);
      return;
    }
    const ref = resourceRef(result.resource);
    if (seen.has(refKey(ref))) problems.push(`resources[${i}]: duplicate ${refToString(ref)}`);
    seen.add(refKey(ref));
    resources.push(result.resource);
  });
  if (problems.length > 0) throw new InvalidResourceError('saved state invalid', problems);
  return { revision: j.revision as number, resources };
}
