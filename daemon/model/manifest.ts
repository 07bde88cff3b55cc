/**
 * Manifests: multi-document YAML (or JSON) text to validated resources, or every problem, each
 * named by file, document, resource and field path. A caller applies all or nothing: when any
 * error is found, no resources are returned.
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import type { Document, LineCounter } from 'yaml';
import { MeshdError } from '../errors.js';
import type { FieldError, PathSegment } from './issues.js';
import {
  isKind,
  isNamespaced,
  type Resource,
  refKey,
  refToString,
  resourceRef,
} from './resource.js';
import { validateResource } from './validate.js';

let yamlModule: typeof Yaml | undefined;

/**
 * yaml, loaded on first use: meshctl parses manifests, the agent never does, and every module a
 * long-running process loads stays resident (docs/benchmarks.md, "Agent memory").
 */
function yaml(): typeof Yaml {
  yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return yamlModule;
}

export interface ManifestError {
  source: string;
  /** 1-based, counting every YAML document of the source (empty ones too). */
  document: number;
  /** 1-based position in a document that is a list of resources (a JSON array). */
  item?: number;
  /** What the document says it is, as far as it can be read: `Service shop/web`. */
  subject?: string;
  line?: number;
  column?: number;
  /** Kubernetes-style field path; "" for the document as a whole. */
  path: string;
  message: string;
}

/** Where a resource came from, parallel to `resources`. */
export interface ManifestOrigin {
  source: string;
  document: number;
  item?: number;
  line?: number;
}

export type ManifestResult =
  | { ok: true; resources: Resource[]; origins: ManifestOrigin[] }
  | { ok: false; errors: ManifestError[] };

export interface ManifestOptions {
  /** Namespace given to namespaced resources whose metadata has none (like `kubectl -n`). */
  defaultNamespace?: string;
}

export interface ManifestFile {
  source: string;
  text: string;
}

/** `shop.yaml: document 2 (Service shop/web): spec.ports[0].port: expected number, got string (line 9)`. */
export function formatManifestError(e: ManifestError): string {
  const item = e.item === undefined ? '' : `, item ${e.item}`;
  const subject = e.subject === undefined ? '' : ` (${e.subject})`;
  const path = e.path === '' ? '' : `${e.path}: `;
  let where = '';
  if (e.line !== undefined) {
    where = e.column === undefined ? ` (line ${e.line})` : ` (line ${e.line}, column ${e.column})`;
  }
  return `${e.source}: document ${e.document}${item}${subject}: ${path}${e.message}${where}`;
}

/** `spec.node: required; metadata.name: must not be empty` (for one resource, one line). */
export function formatFieldErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => (e.path === '' ? e.message : `${e.path}: ${e.message}`)).join('; ');
}

/** The error to throw for invalid input: code MESHD_E_INVALID_RESOURCE, one line per problem. */
export class InvalidResourceError extends MeshdError {
  readonly problems: readonly string[];

  constructor(summary: string, problems: readonly string[]) {
    const body = problems.length === 1 ? ` ${problems[0]}` : `\n  ${problems.join('\n  ')}`;
    super('MESHD_E_INVALID_RESOURCE', `${summary}:${body}`);
    this.problems = problems;
  }

  static fromManifestErrors(errors: readonly ManifestError[]): InvalidResourceError {
    const n = errors.length;
    return new InvalidResourceError(
      `${n} ${n === 1 ? 'problem' : 'problems'} in the manifests; nothing was applied`,
      errors.map(formatManifestError),
    );
  }
}

function subjectOf(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  const kind = typeof v.kind === 'string' ? v.kind : undefined;
  const meta = v.metadata !== null && typeof v.metadata === 'object' ? v.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : undefined;
  const ns =
    typeof meta.namespace === 'string' && kind !== 'Namespace' ? meta.namespace : undefined;
  const id = name === undefined ? undefined : ns === undefined ? name : `${ns}/${name}`;
  if (kind === undefined && id === undefined) return undefined;
  return [kind ?? '<no kind>', id].filter((x) => x !== undefined).join(' ');
}

function withDefaultNamespace(value: unknown, namespace: string | undefined): unknown {
  if (namespace === undefined || value === null || typeof value !== 'object') return value;
  const v = value as { kind?: unknown; metadata?: unknown };
  if (!isKind(v.kind) || !isNamespaced(v.kind)) return value;
  if (v.metadata === null || typeof v.metadata !== 'object' || Array.isArray(v.metadata)) {
    return value;
  }
  const metadata = v.metadata as Record<string, unknown>;
  if (metadata.namespace !== undefined) return value;
  return { ...v, metadata: { ...metadata, namespace } };
}

interface Entry {
  resource: Resource;
  origin: ManifestOrigin;
  nameLine: number | undefined;
}

type Ranged = { range?: [number, number, number] | null } | null | undefined;

/**
 * The line of the deepest node along `segments` that exists: a mapping key's own line (so a
 * missing field points at its parent's key), a list item's first line.
 */
function lineOf(doc: Document, lines: LineCounter, segments: readonly PathSegment[]) {
  const { isMap, isScalar, isSeq } = yaml();
  const lineAt = (node: Ranged) => (node?.range ? lines.linePos(node.range[0]).line : undefined);
  let node: unknown = doc.contents;
  let line = lineAt(node as Ranged);
  for (const seg of segments) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
      if (!pair) break;
      line = lineAt(pair.key as Ranged) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (node === undefined) break;
      line = lineAt(node as Ranged) ?? line;
    } else break;
  }
  return line;
}

function parseFile(file: ManifestFile, options: ManifestOptions, errors: ManifestError[]): Entry[] {
  const { source } = file;
  const { LineCounter, parseAllDocuments } = yaml();
  const lines = new LineCounter();
  const docs = parseAllDocuments(file.text, {
    lineCounter: lines,
    prettyErrors: false,
    uniqueKeys: true,
  });
  const entries: Entry[] = [];
  // A stream that is nothing but a comment parses as an empty list, not an empty array.
  const list = Array.isArray(docs) ? docs : [];
  list.forEach((doc, index) => {
    const document = index + 1;
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        const pos = lines.linePos(err.pos[0]);
        errors.push({
          source,
          document,
          line: pos.line,
          column: pos.col,
          path: '',
          message: `malformed YAML: ${err.message.split('\n')[0]}`,
        });
      }
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      const at = doc.contents?.range ? lines.linePos(doc.contents.range[0]).line : undefined;
      errors.push({
        source,
        document,
        ...(at === undefined ? {} : { line: at }),
        path: '',
        message: `malformed YAML: ${(err as Error).message}`,
      });
      return;
    }
    if (value === null || value === undefined) return;
    const items = Array.isArray(value)
      ? value.map((v, i) => ({
          v,
          item: (i + 1) as number | undefined,
          prefix: [i] as PathSegment[],
        }))
      : [{ v: value, item: undefined, prefix: [] as PathSegment[] }];
    for (const { v, item, prefix } of items) {
      const result = validateResource(withDefaultNamespace(v, options.defaultNamespace));
      const subject = subjectOf(v);
      const base = {
        source,
        document,
        ...(item === undefined ? {} : { item }),
        ...(subject === undefined ? {} : { subject }),
      };
      if (!result.ok) {
        for (const e of result.errors) {
          const line = lineOf(doc, lines, [...prefix, ...e.segments]);
          errors.push({
            ...base,
            ...(line === undefined ? {} : { line }),
            path: e.path,
            message: e.message,
          });
        }
        continue;
      }
      const line = lineOf(doc, lines, prefix);
      entries.push({
        resource: result.resource,
        origin: {
          source,
          document,
          ...(item === undefined ? {} : { item }),
          ...(line === undefined ? {} : { line }),
        },
        nameLine: lineOf(doc, lines, [...prefix, 'metadata', 'name']),
      });
    }
  });
  return entries;
}

function originText(origin: ManifestOrigin, from: string): string {
  const file = origin.source === from ? '' : `${origin.source} `;
  return `${file}document ${origin.document}${origin.item === undefined ? '' : `, item ${origin.item}`}`;
}

/**
 * Parses and validates several files as one input: every error of every file, and resources
 * defined twice (same kind, namespace and name) anywhere in the set, named by both places.
 */
export function parseManifestSet(
  files: readonly ManifestFile[],
  options: ManifestOptions = {},
): ManifestResult {
  const errors: ManifestError[] = [];
  const entries = files.flatMap((file) => parseFile(file, options, errors));
  const first = new Map<string, Entry>();
  for (const entry of entries) {
    const ref = resourceRef(entry.resource);
    const key = refKey(ref);
    const earlier = first.get(key);
    if (!earlier) {
      first.set(key, entry);
      continue;
    }
    const { source, document, item } = entry.origin;
    const subject = refToString(ref);
    errors.push({
      source,
      document,
      ...(item === undefined ? {} : { item }),
      subject,
      ...(entry.nameLine === undefined ? {} : { line: entry.nameLine }),
      path: 'metadata.name',
      message: `duplicate ${subject}: already defined in ${originText(earlier.origin, source)}`,
    });
  }
  if (errors.length > 0) {
    const order = new Map(files.map((f, i) => [f.source, i]));
    const rank = (e: ManifestError) => [order.get(e.source) ?? 0, e.document, e.item ?? 0];
    const sorted = errors
      .map((e, i) => ({ e, i, r: rank(e) }))
      .sort((a, b) => {
        for (let k = 0; k < 3; k++) {
          const d = (a.r[k] ?? 0) - (b.r[k] ?? 0);
          if (d !== 0) return d;
        }
        return a.i - b.i;
      })
      .map((x) => x.e);
    return { ok: false, errors: sorted };
  }
  return {
    ok: true,
    resources: entries.map((e) => e.resource),
    origins: entries.map((e) => e.origin),
  };
}

/** Parses one multi-document YAML or JSON text; `source` names it in errors (a file name). */
export function parseManifests(
  text: string,
  source: string,
  options: ManifestOptions = {},
): ManifestResult {
  return parseManifestSet([{ source, text }], options);
}
