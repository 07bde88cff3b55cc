/**
 * Schema pieces every kind shares: metadata, labels, ports, durations, addresses. The rules
 * are Kubernetes' where Kubernetes has one, so operators' manifests and habits carry over.
 */
import { z } from 'zod';
import { checkIpAddress, checkIpBlock, ipKey } from './ip.js';
import {
  checkDnsLabel,
  checkDnsSubdomain,
  checkLabelKey,
  checkLabelValue,
  checkPortName,
} from './names.js';

export const API_VERSION = 'meshd.io/v1alpha1';

/** Policies in this namespace apply mesh-wide (Istio's root namespace). */
export const ROOT_NAMESPACE = 'meshd-system';

/** `ambient` enrolls a namespace or workload; `none` on a workload opts it out. */
export const LABEL_DATAPLANE_MODE = 'meshd.io/dataplane-mode';
/** `<waypoint name>` on a namespace, service or workload sends its traffic via that waypoint. */
export const LABEL_USE_WAYPOINT = 'meshd.io/use-waypoint';
/** On a waypoint replica's Workload: the Waypoint (same namespace) it serves, once it is ready. */
export const LABEL_WAYPOINT = 'meshd.io/waypoint';

export const DATAPLANE_MODES = ['ambient', 'none'] as const;

/**
 * Refinement option: run a cross-field check even when other fields of the same object already
 * failed (zod skips it by default), so one pass reports every problem. Such checks must guard
 * the types they read: the value is the input as far as it parsed.
 */
export const ALWAYS = {
  when: (payload: { value: unknown }) =>
    payload.value !== null && typeof payload.value === 'object',
};

/** A schema refined by a check that returns the reason a value is bad. */
export function rule<T extends z.ZodType>(
  schema: T,
  check: (value: z.output<T>) => string | undefined,
): T {
  return schema.superRefine((value, ctx) => {
    const reason = check(value);
    if (reason !== undefined) ctx.addIssue({ code: 'custom', message: reason, input: value });
  }) as unknown as T;
}

/** A string with a schema-level message for a missing value. */
function str(required?: string) {
  return required === undefined
    ? z.string()
    : z.string({ error: (iss) => (iss.input === undefined ? required : undefined) });
}

export const dnsLabel = (required?: string) => rule(str(required), checkDnsLabel);
export const dnsSubdomain = () => rule(z.string(), checkDnsSubdomain);
export const labelKey = () => rule(z.string(), checkLabelKey);
export const labelValue = () => rule(z.string(), checkLabelValue);
export const portName = () => rule(z.string(), checkPortName);
export const nonEmptyString = () => z.string().min(1);

/** An integer in min..max (a rule, not zod's int(): that one stops sibling checks). */
export function int(min: number, max: number) {
  return rule(z.number(), (v) => {
    if (!Number.isInteger(v)) return `expected an integer, got ${show(v)}`;
    if (v < min) return `must be at least ${min}, got ${show(v)}`;
    if (v > max) return `must be at most ${max}, got ${show(v)}`;
    return undefined;
  });
}

/** A TCP port 1..65535; `hint` is added when a number was written as a string. */
export function port(hint?: string) {
  const base = z.number({
    error: (iss) =>
      hint !== undefined && typeof iss.input === 'string' && /^\d+$/.test(iss.input)
        ? `expected number, got string (${hint})`
        : undefined,
  });
  return rule(base, (v) =>
    Number.isInteger(v) && v >= 1 && v <= 65535
      ? undefined
      : `must be a port number 1..65535, got ${show(v)}`,
  );
}

export const ipAddress = () => rule(z.string(), checkIpAddress);
export const ipBlock = () => rule(z.string(), checkIpBlock);

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export const timestamp = () =>
  rule(z.string(), (v) =>
    TIMESTAMP.test(v) && !Number.isNaN(Date.parse(v))
      ? undefined
      : `"${v}" is not an RFC 3339 timestamp (like 2025-01-31T12:00:00Z)`,
  );

/** Gateway API durations (GEP-2257): 1 to 4 of <number><h|m|s|ms>, like 10s, 1m30s, 500ms. */
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;

export const duration = () =>
  rule(z.string(), (v) =>
    DURATION.test(v) ? undefined : `"${v}" is not a duration (examples: 500ms, 10s, 1m30s, 1h)`,
  );

/** Milliseconds of a duration the schema accepted (`1m30s` → 90000). */
export function parseDurationMs(text: string): number {
  if (!DURATION.test(text)) throw new RangeError(`"${text}" is not a duration`);
  let ms = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    ms += Number(m[1]) * unit;
  }
  return ms;
}

/** Labels, with the meshd labels' values checked too (a typo would silently do nothing). */
export const labels = () =>
  z.record(labelKey(), labelValue()).superRefine((map, ctx) => {
    const mode = map[LABEL_DATAPLANE_MODE];
    if (typeof mode === 'string' && !(DATAPLANE_MODES as readonly string[]).includes(mode)) {
      ctx.addIssue({
        code: 'custom',
        path: [LABEL_DATAPLANE_MODE],
        input: mode,
        message: `must be ambient or none, got ${show(mode)}`,
      });
    }
    const waypoint = map[LABEL_USE_WAYPOINT];
    if (typeof waypoint === 'string') {
      const bad = checkDnsLabel(waypoint);
      if (bad) {
        ctx.addIssue({
          code: 'custom',
          path: [LABEL_USE_WAYPOINT],
          input: waypoint,
          message: `must name a Waypoint (or be "none"): ${bad}`,
        });
      }
    }
  }, ALWAYS);

const metadataFields = {
  labels: labels().optional(),
  annotations: z.record(labelKey(), z.string()).optional(),
  /** Set by the server on every write; opaque to clients. */
  resourceVersion: z.string().optional(),
  uid: z.string().optional(),
  creationTimestamp: timestamp().optional(),
};

/** Metadata of every kind that lives in a namespace. */
export const namespacedMetadata = () =>
  z.strictObject({
    name: dnsLabel(),
    namespace: dnsLabel('required: every kind except Namespace lives in a namespace'),
    ...metadataFields,
  });

/** Metadata of cluster-wide kinds (Namespace). */
export const clusterMetadata = () =>
  z.strictObject({
    name: dnsLabel(),
    namespace: z
      .undefined({ error: 'must not be set: a Namespace does not live in a namespace' })
      .optional(),
    ...metadataFields,
  });

export type Metadata = z.output<ReturnType<typeof namespacedMetadata>>;

/** Adds an issue for each later list item whose key repeats an earlier one. */
export function unique<T>(
  items: readonly T[] | undefined,
  keyOf: (item: T) => string | number | undefined,
  ctx: z.core.$RefinementCtx,
  pathOf: (index: number) => (string | number)[],
  what: string,
): void {
  const seen = new Map<string | number, number>();
  if (!Array.isArray(items)) return;
  items.forEach((item, i) => {
    if (item === null || item === undefined) return;
    const key = keyOf(item);
    if (key === undefined) return;
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, i);
      return;
    }
    ctx.addIssue({
      code: 'custom',
      path: pathOf(i),
      input: key,
      message: `duplicate ${what} ${show(key)} (already at index ${first})`,
    });
  });
}

/** Duplicate-address check that sees through spellings (`fd00::1` and `FD00:0::1`). */
export function uniqueAddresses(
  addresses: readonly string[] | undefined,
  ctx: z.core.$RefinementCtx,
  field: string,
): void {
  unique(
    addresses,
    (a) => ipKey(a),
    ctx,
    (i) => [field, i],
    'address',
  );
}

/** A value as it appears in an error message. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (value !== null && typeof value === 'object') return 'an object';
  return String(value);
}

/** The envelope of every kind: apiVersion, kind, metadata, spec, and nothing else. */
export function resourceSchema<K extends string, M extends z.ZodType, S extends z.ZodType>(
  kind: K,
  metadata: M,
  spec: S,
) {
  return z.strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(kind),
    metadata,
    spec,
  });
}

export const APP_PROTOCOLS = ['TCP', 'HTTP', 'HTTP2', 'GRPC'] as const;
export type AppProtocol = (typeof APP_PROTOCOLS)[number];
