/**
 * Turns zod issues into meshd's field errors: a Kubernetes-style path
 * (`spec.ports[1].targetPort`, `metadata.labels[app]`) and a short reason an operator can act on.
 */
import type { z } from 'zod';
import { show } from './common.js';
import { closest } from './names.js';

export type PathSegment = string | number;

/** One problem of one resource: where (path) and why (message). */
export interface FieldError {
  /** Kubernetes-style field path; "" for the document as a whole. */
  path: string;
  segments: readonly PathSegment[];
  message: string;
}

/** The type name of a value as messages say it (a YAML list is a "list"). */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'list';
  return typeof value;
}

const TYPE_NAMES: Record<string, string> = { array: 'list', int: 'integer' };

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** The per-parse error map: messages for zod's generic issues (schemas set their own for rules). */
export const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'required';
      if (iss.expected === 'int') return `expected an integer, got ${show(iss.input)}`;
      const expected = TYPE_NAMES[iss.expected] ?? iss.expected;
      return `expected ${expected}, got ${typeName(iss.input)}`;
    }
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'array') return `must have at least ${plural(min, 'item')}`;
      if (iss.origin === 'string') {
        return min === 1 ? 'must not be empty' : `must be at least ${plural(min, 'character')}`;
      }
      return `must be at least ${min}, got ${show(iss.input)}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'array') return `must have at most ${plural(max, 'item')}`;
      if (iss.origin === 'string') return `must be at most ${plural(max, 'character')}`;
      return `must be at most ${max}, got ${show(iss.input)}`;
    }
    case 'invalid_value': {
      const values = iss.values.map(String);
      const allowed = values.length === 1 ? values[0] : `one of ${values.join(', ')}`;
      return `must be ${allowed}, got ${show(iss.input)}`;
    }
    default:
      return undefined;
  }
};

// Walking a schema along a path, to tell record keys from fields and to list known fields.
// zod 4 keeps the structure in `_zod.def`; only the wrappers meshd's schemas use are followed.
interface Def {
  type: string;
  shape?: Record<string, Walkable>;
  innerType?: Walkable;
  in?: Walkable;
  element?: Walkable;
  valueType?: Walkable;
}
interface Walkable {
  _zod: { def: Def };
}

const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch']);

function unwrap(schema: Walkable): Walkable {
  let s = schema;
  for (let i = 0; i < 20; i++) {
    const def = s._zod.def;
    if (WRAPPERS.has(def.type) && def.innerType) s = def.innerType;
    else if (def.type === 'pipe' && def.in) s = def.in;
    else return s;
  }
  return s;
}

function child(schema: Walkable | undefined, segment: PathSegment): Walkable | undefined {
  if (!schema) return undefined;
  const def = unwrap(schema)._zod.def;
  if (def.type === 'object' && typeof segment === 'string') return def.shape?.[segment];
  if (def.type === 'array' && typeof segment === 'number') return def.element;
  if (def.type === 'record') return def.valueType;
  return undefined;
}

function isRecord(schema: Walkable | undefined): boolean {
  return schema !== undefined && unwrap(schema)._zod.def.type === 'record';
}

/** The fields an object schema at `segments` knows, sorted. */
function knownFields(root: z.ZodType, segments: readonly PathSegment[]): string[] {
  let s: Walkable | undefined = root as unknown as Walkable;
  for (const seg of segments) s = child(s, seg);
  if (!s) return [];
  const def = unwrap(s)._zod.def;
  return def.type === 'object' ? Object.keys(def.shape ?? {}).sort() : [];
}

const PLAIN_KEY = /^[A-Za-z0-9._/-]+$/;

/** `spec.ports[1].targetPort`; map keys in brackets: `metadata.labels[app]`. */
export function formatPath(root: z.ZodType | undefined, segments: readonly PathSegment[]): string {
  let out = '';
  let s: Walkable | undefined = root as unknown as Walkable | undefined;
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (isRecord(s) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) {
      out += PLAIN_KEY.test(seg) ? `[${seg}]` : `[${JSON.stringify(seg)}]`;
    } else out += out === '' ? seg : `.${seg}`;
    s = child(s, seg);
  }
  return out;
}

function unknownField(root: z.ZodType, parent: readonly PathSegment[], key: string): string {
  const known = knownFields(root, parent);
  if (known.length === 0) return 'unknown field';
  const guess = closest(key, known);
  if (guess) return `unknown field (did you mean "${guess}"?)`;
  return `unknown field (known fields: ${known.join(', ')})`;
}

/** Field errors for the issues of `root.safeParse(…, { error: errorMap })`, in zod's order. */
export function toFieldErrors(root: z.ZodType, issues: readonly z.core.$ZodIssue[]): FieldError[] {
  const out: FieldError[] = [];
  const add = (segments: PathSegment[], message: string) =>
    out.push({ path: formatPath(root, segments), segments, message });
  for (const iss of issues) {
    const path = iss.path.filter((p): p is PathSegment => typeof p !== 'symbol');
    if (iss.code === 'unrecognized_keys') {
      for (const key of iss.keys) add([...path, key], unknownField(root, path, key));
    } else if (iss.code === 'invalid_key') {
      add(path, `invalid key: ${iss.issues[0]?.message ?? iss.message}`);
    } else {
      add(path, iss.message);
    }
  }
  return out;
}
