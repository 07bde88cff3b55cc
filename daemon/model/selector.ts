/**
 * Kubernetes label selectors: `matchLabels` and `matchExpressions` (In, NotIn, Exists,
 * DoesNotExist), all ANDed. An empty selector `{}` matches everything, as in Kubernetes.
 */
import { z } from 'zod';
import { ALWAYS, labelKey, labels, labelValue } from './common.js';

export const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
export type SelectorOperator = (typeof SELECTOR_OPERATORS)[number];

export type Labels = Readonly<Record<string, string>>;

const requirement = z
  .strictObject({
    key: labelKey(),
    operator: z.enum(SELECTOR_OPERATORS),
    values: z.array(labelValue()).optional(),
  })
  .superRefine((req, ctx) => {
    const count = Array.isArray(req.values) ? req.values.length : 0;
    if ((req.operator === 'In' || req.operator === 'NotIn') && count === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        input: req.values,
        message: `operator ${req.operator} needs at least one value`,
      });
    }
    if ((req.operator === 'Exists' || req.operator === 'DoesNotExist') && count > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        input: req.values,
        message: `operator ${req.operator} takes no values`,
      });
    }
  }, ALWAYS);

export const labelSelectorSchema = z.strictObject({
  matchLabels: labels().optional(),
  matchExpressions: z.array(requirement).optional(),
});

export type LabelSelector = z.output<typeof labelSelectorSchema>;
export type LabelSelectorRequirement = z.output<typeof requirement>;

/** True for `{}` and selectors with no labels and no expressions: they match everything. */
export function isEmptySelector(selector: LabelSelector): boolean {
  return (
    Object.keys(selector.matchLabels ?? {}).length === 0 &&
    (selector.matchExpressions?.length ?? 0) === 0
  );
}

/** Whether `labels` satisfy every requirement of `selector` (Kubernetes semantics). */
export function matches(selector: LabelSelector, labels: Labels | undefined): boolean {
  const have = labels ?? {};
  const ml = selector.matchLabels;
  if (ml) {
    for (const key in ml) {
      if (!Object.hasOwn(have, key) || have[key] !== ml[key]) return false;
    }
  }
  for (const req of selector.matchExpressions ?? []) {
    const present = Object.hasOwn(have, req.key);
    const value = have[req.key];
    switch (req.operator) {
      case 'In':
        if (!present || !(req.values ?? []).includes(value as string)) return false;
        break;
      case 'NotIn':
        if (present && (req.values ?? []).includes(value as string)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
    }
  }
  return true;
}

/**
 * Kubernetes' text form for tables: `app=web,tier in (a,b),!legacy`. Requirements are sorted
 * by key (then operator), values sorted; the empty selector, which matches everything, is `<all>`.
 */
export function selectorToString(selector: LabelSelector): string {
  const parts: { key: string; order: number; text: string }[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    parts.push({ key, order: 0, text: `${key}=${value}` });
  }
  for (const req of selector.matchExpressions ?? []) {
    const values = [...(req.values ?? [])].sort().join(',');
    const text = {
      In: `${req.key} in (${values})`,
      NotIn: `${req.key} notin (${values})`,
      Exists: req.key,
      DoesNotExist: `!${req.key}`,
    }[req.operator];
    parts.push({ key: req.key, order: 1 + SELECTOR_OPERATORS.indexOf(req.operator), text });
  }
  if (parts.length === 0) return '<all>';
  parts.sort((a, b) =>
    a.key < b.key ? -1 : a.key > b.key ? 1 : a.order - b.order || (a.text < b.text ? -1 : 1),
  );
  return parts.map((p) => p.text).join(',');
}

/**
 * Parses the Kubernetes selector string form (`app=web,tier in (a,b),!legacy`, the one kubectl
 * takes with -l): `k=v`, `k==v`, `k!=v`, `k in (…)`, `k notin (…)`, `k`, `!k`.
 * Throws a RangeError naming the part it cannot read.
 */
export function parseLabelSelector(text: string): LabelSelector {
  const matchLabels: Record<string, string> = {};
  const matchExpressions: LabelSelectorRequirement[] = [];
  for (const raw of splitTopLevel(text)) {
    const part = raw.trim();
    if (part === '') continue;
    const set = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part);
    const eq = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s=(),]*)$/.exec(part);
    const exists = /^(!?)([^\s!=(),]+)$/.exec(part);
    if (set?.[1] && set[3] !== undefined) {
      const values = set[3]
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean);
      matchExpressions.push({ key: set[1], operator: set[2] === 'in' ? 'In' : 'NotIn', values });
    } else if (eq?.[1]) {
      if (eq[2] === '!=')
        matchExpressions.push({ key: eq[1], operator: 'NotIn', values: [eq[3] ?? ''] });
      else matchLabels[eq[1]] = eq[3] ?? '';
    } else if (exists?.[2]) {
      matchExpressions.push({ key: exists[2], operator: exists[1] ? 'DoesNotExist' : 'Exists' });
    } else {
      throw new RangeError(
        `cannot read selector part "${part}" (use k=v, k!=v, k in (a,b), k notin (a), k, !k)`,
      );
    }
  }
  return {
    ...(Object.keys(matchLabels).length ? { matchLabels } : {}),
    ...(matchExpressions.length ? { matchExpressions } : {}),
  };
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}
