/**
 * Kubernetes naming rules (DNS-1123 labels and subdomains, label keys and values). Each check
 * returns the reason a value breaks the rule, or undefined when it is fine, so schemas and
 * callers can show the reason as it is.
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** A DNS-1123 label: metadata names, namespaces, node names. */
export function checkDnsLabel(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value.length > 63) return `must be at most 63 characters (has ${value.length})`;
  if (!DNS_LABEL.test(value)) {
    return 'must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit';
  }
  return undefined;
}

/** A DNS-1123 subdomain: dot-separated DNS labels, at most 253 characters. */
export function checkDnsSubdomain(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value.length > 253) return `must be at most 253 characters (has ${value.length})`;
  if (!value.split('.').every((part) => part.length <= 63 && DNS_LABEL.test(part))) {
    return 'must be a DNS subdomain: lowercase letters, digits, "-" and ".", each part starting and ending with a letter or digit';
  }
  return undefined;
}

/** A label or annotation key: `[prefix/]name` with a DNS-subdomain prefix. */
export function checkLabelKey(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined) {
    if (prefix === '') return 'prefix part must not be empty';
    const bad = checkDnsSubdomain(prefix);
    if (bad) return `prefix part ${bad}`;
  }
  if (name === '') return 'name part must not be empty';
  if (name.length > 63) return `name part must be at most 63 characters (has ${name.length})`;
  if (!LABEL_NAME.test(name)) {
    return 'name part must consist of letters, digits, "-", "_" or ".", starting and ending with a letter or digit';
  }
  return undefined;
}

/** A label value: empty, or at most 63 letters, digits, "-", "_", "." (alphanumeric at both ends). */
export function checkLabelValue(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63) return `must be at most 63 characters (has ${value.length})`;
  if (!LABEL_NAME.test(value)) {
    return 'must consist of letters, digits, "-", "_" or ".", starting and ending with a letter or digit (or be empty)';
  }
  return undefined;
}

/** A port name (IANA service name as Kubernetes checks it): a DNS label of at most 15 characters with a letter. */
export function checkPortName(value: string): string | undefined {
  const bad = checkDnsLabel(value);
  if (bad) return bad;
  if (value.length > 15) return `must be at most 15 characters (has ${value.length})`;
  if (value.includes('--')) return 'must not contain "--"';
  if (!/[a-z]/.test(value)) return 'must contain at least one letter';
  return undefined;
}

/** Edit distance with transpositions (optimal string alignment), for "did you mean" hints. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? 0;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] ?? [];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, at(i - 2, j - 2) + 1);
      }
      row[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The closest candidate within a small edit distance (case-insensitive match first). */
export function closest(value: string, candidates: readonly string[]): string | undefined {
  const lower = value.toLowerCase();
  const exact = candidates.find((c) => c.toLowerCase() === lower);
  if (exact) return exact;
  let best: string | undefined;
  let bestDistance = Math.min(3, Math.floor(value.length / 3) + 1);
  for (const c of candidates) {
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}
