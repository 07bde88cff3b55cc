/**
 * Which AuthorizationPolicies and PeerAuthentications apply to which workloads. A policy with a
 * selector is matched against the shared label index; one without (or with an empty one) is
 * namespace-wide and is filed by namespace instead, so it costs nothing per workload. The root
 * namespace's policies apply in every namespace (Istio's rule).
 */
import { ROOT_NAMESPACE } from '../common.js';
import type { AuthorizationPolicy } from '../kinds/authorization-policy.js';
import type { MtlsMode, PeerAuthentication } from '../kinds/peer-authentication.js';
import type { Resource } from '../resource.js';
import { isEmptySelector, type LabelSelector } from '../selector.js';
import {
  ALL_NAMESPACES,
  type Scope,
  SelectorMatcher,
  type WorkloadLabelIndex,
} from '../selector-index.js';
import type { Affected } from './affected.js';
import { addTo, EMPTY, removeFrom } from './key-sets.js';
import type { NamespacedName } from './keys.js';

export type PolicyKind = 'AuthorizationPolicy' | 'PeerAuthentication';
type Policy = AuthorizationPolicy | PeerAuthentication;

export const DEFAULT_MTLS_MODE: MtlsMode = 'PERMISSIVE';

export interface EffectiveMtls {
  mode: MtlsMode;
  /** The PeerAuthentication that decided, or undefined for the default (PERMISSIVE). */
  policy: PeerAuthentication | undefined;
}

/** The workloads a policy of this namespace may apply to. */
export const policyScope = (namespace: string): Scope =>
  namespace === ROOT_NAMESPACE ? ALL_NAMESPACES : namespace;

/** No selector and an empty one both mean "every workload in scope". */
export const isWide = (selector: LabelSelector | undefined) =>
  selector === undefined || isEmptySelector(selector);

const selectorOf = (r: Resource) => (r as Policy).spec.selector;

/** An AuthorizationPolicy with targetRefs: enforced by a waypoint, never by the agents. */
const isWaypointPolicy = (r: Resource) =>
  r.kind === 'AuthorizationPolicy' && (r as AuthorizationPolicy).spec.targetRefs !== undefined;

/** The policies of one kind: selector ones in a matcher, namespace-wide ones by namespace. */
class PoliciesOfKind {
  readonly selecting: SelectorMatcher;
  readonly wide = new Map<string, Set<string>>();
  constructor(labels: WorkloadLabelIndex) {
    this.selecting = new SelectorMatcher(labels);
  }
}

export class PolicyIndex {
  readonly #labels: WorkloadLabelIndex;
  readonly #kinds: Record<PolicyKind, PoliciesOfKind>;

  constructor(labels: WorkloadLabelIndex) {
    this.#labels = labels;
    this.#kinds = {
      AuthorizationPolicy: new PoliciesOfKind(labels),
      PeerAuthentication: new PoliciesOfKind(labels),
    };
  }

  /**
   * Files `now` in place of `old`; the workloads the policy applied to before and applies to
   * now are affected. A namespace-wide policy affects its whole scope, which is only collected
   * when tracked (a snapshot load would otherwise walk the namespace once per policy).
   */
  update(
    key: string,
    kind: PolicyKind,
    previous: Resource | undefined,
    current: Resource | undefined,
    affected: Affected,
  ): void {
    // A targetRefs policy is a waypoint's: it applies to no workload at L4.
    const old = previous && !isWaypointPolicy(previous) ? previous : undefined;
    const now = current && !isWaypointPolicy(current) ? current : undefined;
    const { selecting, wide } = this.#kinds[kind];
    if (old) {
      const ns = old.metadata.namespace ?? '';
      if (isWide(selectorOf(old))) {
        if (affected.track) affected.addWorkloads(this.#labels.inScope(policyScope(ns)));
        removeFrom(wide, ns, key);
      } else if (!now || isWide(selectorOf(now))) {
        affected.addWorkloads(selecting.deleteOwner(key).removed);
      } else {
        affected.addWorkloads(selecting.selected(key));
      }
    }
    if (now) {
      const ns = now.metadata.namespace ?? '';
      const selector = selectorOf(now);
      if (selector === undefined || isEmptySelector(selector)) {
        addTo(wide, ns, key);
        if (affected.track) affected.addWorkloads(this.#labels.inScope(policyScope(ns)));
      } else {
        selecting.setOwner(key, policyScope(ns), selector);
        affected.addWorkloads(selecting.selected(key));
      }
    }
  }

  /** Re-matches a workload whose labels changed (or that was deleted) against every selector. */
  rematchWorkload(workloadKey: string): void {
    this.#kinds.AuthorizationPolicy.selecting.updateWorkload(workloadKey);
    this.#kinds.PeerAuthentication.selecting.updateWorkload(workloadKey);
  }

  /** Keys of the workloads a (stored) policy applies to. */
  workloadKeysOf(kind: PolicyKind, key: string, policy: Policy): ReadonlySet<string> {
    if (isWaypointPolicy(policy)) return EMPTY;
    if (isWide(policy.spec.selector)) {
      return this.#labels.inScope(policyScope(policy.metadata.namespace));
    }
    return this.#kinds[kind].selecting.selected(key);
  }

  /** Keys of the AuthorizationPolicies that apply to a workload: selecting, namespace-wide, mesh-wide. */
  authorizationKeysFor(workload: NamespacedName, workloadKey: string): Set<string> {
    const { selecting, wide } = this.#kinds.AuthorizationPolicy;
    const keys = new Set(selecting.selectedBy(workloadKey));
    for (const k of wide.get(workload.namespace) ?? EMPTY) keys.add(k);
    for (const k of wide.get(ROOT_NAMESPACE) ?? EMPTY) keys.add(k);
    return keys;
  }

  /**
   * Keys of the PeerAuthentications that may decide a workload's mTLS mode, most specific
   * first: those selecting it, its namespace's namespace-wide ones, the mesh-wide ones. The
   * first tier with a policy decides; later tiers are not looked at (hence a generator).
   */
  *peerAuthenticationTiers(
    workload: NamespacedName,
    workloadKey: string,
  ): Generator<ReadonlySet<string>> {
    const { selecting, wide } = this.#kinds.PeerAuthentication;
    yield selecting.selectedBy(workloadKey);
    yield wide.get(workload.namespace) ?? EMPTY;
    yield wide.get(ROOT_NAMESPACE) ?? EMPTY;
  }
}

/**
 * Istio's tie-break among PeerAuthentications of one tier (given sorted by namespace and
 * name): the workload's own namespace first, then the oldest (creationTimestamp; none counts
 * as newest), then the given order.
 */
export function pickPeerAuthentication(
  policies: readonly PeerAuthentication[],
  workloadNamespace: string,
): PeerAuthentication | undefined {
  const rank = (p: PeerAuthentication) => [
    p.metadata.namespace === workloadNamespace ? 0 : 1,
    p.metadata.creationTimestamp ? Date.parse(p.metadata.creationTimestamp) : Infinity,
  ];
  return policies
    .map((p, i) => ({ p, i, r: rank(p) }))
    .sort((a, b) => (a.r[0] ?? 0) - (b.r[0] ?? 0) || (a.r[1] ?? 0) - (b.r[1] ?? 0) || a.i - b.i)[0]
    ?.p;
}
