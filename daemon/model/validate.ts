/** validateResource: any parsed value in, a typed Resource (defaults applied) or every problem out. */
import { API_VERSION, show } from './common.js';
import { errorMap, type FieldError, formatPath, toFieldErrors, typeName } from './issues.js';
import { closest } from './names.js';
import { isKind, KINDS, RESOURCE_SCHEMAS, type Resource } from './resource.js';

export type ValidationResult =
  | { ok: true; resource: Resource }
  | { ok: false; errors: FieldError[] };

function fieldError(segments: string[], message: string): FieldError {
  return { path: formatPath(undefined, segments), segments, message };
}

/** Drops keys whose value is undefined, so a resource is the same before and after JSON. */
function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = withoutUndefined(v);
  return out;
}

/**
 * Checks one resource against its kind's schema. Unknown fields, wrong types and broken rules
 * are all reported, each with its field path; an unknown kind or apiVersion stops at the envelope.
 */
export function validateResource(input: unknown): ValidationResult {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return {
      ok: false,
      errors: [
        fieldError(
          [],
          `expected an object with apiVersion, kind, metadata and spec, got ${typeName(input)}`,
        ),
      ],
    };
  }
  const doc = input as Record<string, unknown>;
  const errors: FieldError[] = [];
  if (doc.apiVersion !== API_VERSION) {
    errors.push(
      fieldError(
        ['apiVersion'],
        doc.apiVersion === undefined
          ? `required (${API_VERSION})`
          : `must be ${API_VERSION}, got ${show(doc.apiVersion)}`,
      ),
    );
  }
  const kind = doc.kind;
  if (!isKind(kind)) {
    const known = `known kinds: ${KINDS.join(', ')}`;
    let message: string;
    if (kind === undefined) message = `required (${known})`;
    else if (typeof kind !== 'string')
      message = `expected string, got ${typeName(kind)} (${known})`;
    else {
      const guess = closest(kind, KINDS);
      message = `unknown kind ${show(kind)}${guess ? ` (did you mean "${guess}"?)` : ''}; ${known}`;
    }
    errors.push(fieldError(['kind'], message));
    return { ok: false, errors };
  }
  const schema = RESOURCE_SCHEMAS[kind];
  const result = schema.safeParse(input, { error: errorMap });
  if (result.success && errors.length === 0) {
    return { ok: true, resource: withoutUndefined(result.data) as Resource };
  }
  if (!result.success) {
    const issues = result.error.issues.filter(
      (i) => !(i.path.length === 1 && i.path[0] === 'apiVersion'),
    );
    errors.push(...toFieldErrors(schema, issues));
  }
  return { ok: false, errors };
}
