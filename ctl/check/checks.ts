/**
 * The checks of `meshctl check`, data-driven: each is a name and a pure function from the
 * gathered facts to results, so they are table-tested without a cluster.
 */
import {
  type AuthorizationPolicy,
  isWaypointPolicy,
  LABEL_USE_WAYPOINT,
  MeshState,
  type NamespacedName,
  type Resource,
  validateResource,
  type Workload,
} from '../../daemon/model/index.js';
import { l7Warnings } from '../../daemon/policy/index.js';
import { nodeState } from '../nodes.js';
import {
  allBindings,
  type BoundObject,
  describeBound,
  replicasOf,
  startHint,
  unenforcedTargets,
} from '../waypoint/view.js';
import type { CertFact, CheckResult, CheckStatus, Facts } from './facts.js';

export interface Check {
  name: string;
  run(facts: Facts): CheckResult[];
}

const DAY = 86_400_000;
/** Clock skew beyond which certificate validity and logs start to mislead. */
export const SKEW_WARN_MS = 1_000;
export const SKEW_FAIL_MS = 30_000;
/** Agents renew at half of a certificate's life: a quarter left means renewal is failing. */
const CERT_LIFE_LEFT_WARN = 0.25;

const result = (
  check: string,
  status: CheckStatus,
  subject: string,
  message: string,
  hint?: string,
): CheckResult => ({ check, status, subject, message, ...(hint ? { hint } : {}) });

const servers: Check = {
  name: 'server',
  run: (f) => [
    ...f.servers.map((s) =>
      result('server', 'ok', s.address, `answers (registry revision ${s.revision})`),
    ),
    ...f.unreachable.map((u) =>
      result(
        'server',
        'fail',
        u.address,
        `unreachable: ${u.error}`,
        'is meshd server running there? (systemctl status meshd-server; the address and port in --server or ~/.meshd/config.yaml)',
      ),
    ),
    ...f.readiness.map((r) =>
      r.ready
        ? result('server', 'ok', r.address, `ready (${r.url})`)
        : result(
            'server',
            'fail',
            r.address,
            `not ready: ${r.detail} (${r.url})`,
            'see the server log (journalctl -u meshd-server); it reports ready once its store and CA are loaded',
          ),
    ),
  ],
};

const trust: Check = {
  name: 'trust',
  run: (f) => {
    const out: CheckResult[] = [];
    const { localRoots, serverRoots, admin, caDir } = f.trust;
    for (const root of localRoots) {
      const left = root.notAfter - f.now;
      out.push(
        left <= 0
          ? result(
              'trust',
              'fail',
              root.subject,
              'root certificate expired',
              'rotate the root: meshctl ca rotate-root',
            )
          : left < 30 * DAY
            ? result(
                'trust',
                'warn',
                root.subject,
                `root expires in ${Math.floor(left / DAY)} days`,
                'rotate the root: meshctl ca rotate-root',
              )
            : result(
                'trust',
                'ok',
                root.subject,
                `root valid until ${new Date(root.notAfter).toISOString()}`,
              ),
      );
    }
    if (localRoots.length === 0)
      out.push(
        result(
          'trust',
          'fail',
          caDir,
          'no root in bundle.pem',
          'point --ca-dir at the directory made by "meshctl ca init"',
        ),
      );
    if ('error' in serverRoots) {
      out.push(
        result('trust', 'fail', 'trust bundle', `cannot read the server's: ${serverRoots.error}`),
      );
    } else {
      const local = new Set(localRoots.map((r) => r.fingerprint));
      const same = serverRoots.length === local.size && serverRoots.every((fp) => local.has(fp));
      out.push(
        same
          ? result(
              'trust',
              'ok',
              'trust bundle',
              `the server's bundle equals ${caDir}/bundle.pem (${local.size} root${local.size === 1 ? '' : 's'})`,
            )
          : result(
              'trust',
              'warn',
              'trust bundle',
              `the server's bundle differs from ${caDir}/bundle.pem`,
              "a root rotation may be in progress; otherwise copy the server's bundle.pem to this CA directory",
            ),
      );
    }
    if ('error' in admin) out.push(result('trust', 'fail', 'admin certificate', admin.error));
    else if (admin.notAfter - f.now < 7 * DAY)
      out.push(
        result(
          'trust',
          admin.notAfter <= f.now ? 'fail' : 'warn',
          'admin certificate',
          `expires ${new Date(admin.notAfter).toISOString()}`,
          'issue a new one: meshctl ca init --admin-only (or your CA procedure)',
        ),
      );
    return out;
  },
};

const agents: Check = {
  name: 'agent',
  run: (f) =>
    f.nodes.map((n) => {
      const state = nodeState(n);
      if (state !== 'Connected') {
        return result(
          'agent',
          'fail',
          n.name,
          state === 'Disconnected'
            ? `agent disconnected since ${n.disconnectedAt}`
            : 'no agent has connected for this node',
          `start or restart meshd agent on ${n.name}; ${f.agentLogHint(n.name)}`,
        );
      }
      const behind = n.serverRevision - n.revisionSent;
      if (behind > 0)
        return result(
          'agent',
          'warn',
          n.name,
          `connected, ${behind} revision(s) behind (${n.revisionSent} of ${n.serverRevision})`,
          'it should catch up within seconds; if not, see its log',
        );
      return result(
        'agent',
        'ok',
        n.name,
        `connected to ${n.server}, state current (revision ${n.revisionSent})`,
      );
    }),
};

const skewStatus = (ms: number): CheckStatus =>
  Math.abs(ms) >= SKEW_FAIL_MS ? 'fail' : Math.abs(ms) >= SKEW_WARN_MS ? 'warn' : 'ok';

const clocks: Check = {
  name: 'clock',
  run: (f) =>
    [
      ...f.servers.map((s) =>
        result(
          'clock',
          skewStatus(s.clockOffsetMs),
          s.address,
          `server clock ${s.clockOffsetMs} ms from this host's`,
          'synchronise clocks (chrony or systemd-timesyncd)',
        ),
      ),
      ...f.nodes
        .filter((n) => n.connected)
        .map((n) =>
          result(
            'clock',
            skewStatus(n.clockSkewMs),
            n.name,
            `agent clock ${n.clockSkewMs} ms from the server's`,
            'synchronise clocks (chrony or systemd-timesyncd)',
          ),
        ),
    ].map((r) =>
      r.status === 'ok'
        ? { check: r.check, status: r.status, subject: r.subject, message: r.message }
        : r,
    ),
};

const host: Check = {
  name: 'kernel',
  run: (f) => {
    const h = f.host;
    const hint = 'install iptables (nft backend) and load nf_conntrack; see docs/operations.md';
    return [
      result(
        'kernel',
        h.iptables.ok ? 'ok' : 'fail',
        'iptables',
        h.iptables.detail,
        h.iptables.ok ? undefined : hint,
      ),
      result(
        'kernel',
        h.ip6tables.ok ? 'ok' : 'fail',
        'ip6tables',
        h.ip6tables.detail,
        h.ip6tables.ok ? undefined : hint,
      ),
      result(
        'kernel',
        h.conntrack ? 'ok' : 'fail',
        'conntrack',
        h.conntrack ? 'nf_conntrack present (original destinations)' : 'nf_conntrack missing',
        h.conntrack ? undefined : 'modprobe nf_conntrack',
      ),
      result(
        'kernel',
        h.addon.ok ? 'ok' : 'fail',
        'native addon',
        h.addon.detail,
        h.addon.ok ? undefined : 'rebuild it: npm run build',
      ),
    ];
  },
};

/** Every enrolled workload must be in its node agent's captured set. */
const capture: Check = {
  name: 'capture',
  run: (f) => {
    const state = new MeshState();
    state.replaceAll(f.resources, 0);
    const enrolled = f.resources
      .filter((r): r is Workload => r.kind === 'Workload')
      .filter((w) => state.isEnrolled(w));
    const out: CheckResult[] = [];
    const byNode = new Map<string, Workload[]>();
    for (const w of enrolled) byNode.set(w.spec.node, [...(byNode.get(w.spec.node) ?? []), w]);
    for (const [node, workloads] of [...byNode].sort(([a], [b]) => a.localeCompare(b))) {
      const agent = f.agents[node];
      const down = f.nodes.find((n) => n.name === node && !n.connected);
      if (down) {
        out.push(
          result(
            'capture',
            'fail',
            node,
            `${workloads.length} enrolled workload(s) whose agent is not connected: their capture rules lead to no listener, so their connections fail`,
            `start meshd agent on ${node}; ${f.agentLogHint(node)}`,
          ),
        );
        continue;
      }
      if (!agent || 'error' in agent) {
        out.push(
          result(
            'capture',
            'warn',
            node,
            `${workloads.length} enrolled workload(s); cannot see the agent's view: ${agent?.error ?? 'not asked'}`,
            `run "meshctl check" on ${node}, or "meshctl agent workloads --node ${node}" there`,
          ),
        );
        continue;
      }
      const captured = new Set(agent.dump.captured.map((c) => c.workload));
      for (const w of workloads) {
        const ref = `${w.metadata.namespace}/${w.metadata.name}`;
        out.push(
          captured.has(ref)
            ? result('capture', 'ok', ref, `captured on ${node}`)
            : result(
                'capture',
                'fail',
                ref,
                `enrolled but not captured by the agent on ${node}`,
                `see "meshctl agent workloads --node ${node}" and ${f.agentLogHint(node)}; a workload without a netns (spec.netns) cannot be captured`,
              ),
        );
      }
    }
    return out;
  },
};

function certResult(node: string, c: CertFact, now: number): CheckResult | undefined {
  if (!c.notAfter || !c.notBefore) return undefined;
  const end = Date.parse(c.notAfter);
  const life = end - Date.parse(c.notBefore);
  const left = end - now;
  const subject = `${node}: ${c.identity}`;
  if (left <= 0)
    return result(
      'certificates',
      'fail',
      subject,
      `expired at ${c.notAfter}`,
      'the agent cannot renew it: check its connection to the server and its log',
    );
  if (life > 0 && left / life < CERT_LIFE_LEFT_WARN)
    return result(
      'certificates',
      'warn',
      subject,
      `expires at ${c.notAfter} (${Math.round((left / life) * 100)}% of its life left)`,
      'renewal should have happened at half-life: check the agent log',
    );
  return undefined;
}

const certificates: Check = {
  name: 'certificates',
  run: (f) => {
    const out: CheckResult[] = [];
    for (const [node, agent] of Object.entries(f.agents).sort(([a], [b]) => a.localeCompare(b))) {
      if ('error' in agent) continue;
      const problems = agent.dump.certificates.flatMap((c) => certResult(node, c, f.now) ?? []);
      out.push(...problems);
      if (problems.length === 0)
        out.push(
          result(
            'certificates',
            'ok',
            node,
            `${agent.dump.certificates.length} certificate(s), none close to expiry`,
          ),
        );
    }
    return out;
  },
};

/** The registry as the agents hold it: validated, so defaults (trafficType, action) are set. */
const stateOf = (f: Facts): MeshState => {
  const state = new MeshState();
  state.replaceAll(
    f.resources.flatMap((r) => {
      const v = validateResource(r);
      return v.ok ? [v.resource as Resource] : [];
    }),
    0,
  );
  return state;
};

const viaText = (via: BoundObject['via']) =>
  via === 'spec.waypoint' ? 'its spec.waypoint' : via === 'label' ? 'its label' : 'its namespace';

/**
 * Every Waypoint with a ready replica passes; every binding to a Waypoint that does not exist or
 * has no ready replica fails (its traffic is refused: bindings fail closed), one row per
 * namespace label and per object naming the waypoint itself.
 */
const waypoints: Check = {
  name: 'waypoint',
  run: (f) => {
    const state = stateOf(f);
    const out: CheckResult[] = [];
    const bindings = allBindings(state);
    const key = (w: NamespacedName) => `${w.namespace}/${w.name}`;
    const boundTo = (w: NamespacedName) => bindings.filter((b) => key(b.waypoint) === key(w));
    for (const w of state.list('Waypoint')) {
      const ref = { namespace: w.metadata.namespace ?? '', name: w.metadata.name };
      const replicas = replicasOf(state, ref);
      const ready = replicas.filter((r) => r.ready).length;
      const bound = describeBound(boundTo(ref));
      if (ready > 0)
        out.push(
          result(
            'waypoint',
            'ok',
            key(ref),
            `${ready} of ${replicas.length} replica${replicas.length === 1 ? '' : 's'} ready, carries ${bound === 'nothing' ? 'nothing yet' : `the traffic of ${bound}`}`,
          ),
        );
      else if (boundTo(ref).length === 0)
        out.push(
          result(
            'waypoint',
            'warn',
            key(ref),
            'no ready replica (nothing is bound to it yet)',
            startHint(ref),
          ),
        );
    }
    const broken = (w: NamespacedName) =>
      !state.get({ kind: 'Waypoint', ...w })
        ? 'does not exist'
        : replicasOf(state, w).some((r) => r.ready)
          ? undefined
          : 'has no ready replica';
    const fix = (w: NamespacedName) =>
      state.get({ kind: 'Waypoint', ...w })
        ? startHint(w)
        : `create it (meshctl waypoint apply ${w.name} -n ${w.namespace}) or remove the binding`;
    // Namespace labels: one row each, with what they bind.
    for (const ns of state.list('Namespace')) {
      const name = ns.metadata.labels?.[LABEL_USE_WAYPOINT];
      if (name === undefined || name === 'none') continue;
      const wp = { namespace: ns.metadata.name, name };
      const why = broken(wp);
      if (!why) continue;
      const bound = bindings.filter(
        (b) => b.via === 'namespace label' && b.namespace === wp.namespace,
      );
      out.push(
        result(
          'waypoint',
          bound.length ? 'fail' : 'warn',
          `namespace ${wp.namespace}`,
          `label ${LABEL_USE_WAYPOINT}=${name} binds ${describeBound(bound)} to waypoint ${key(wp)}, which ${why}${bound.length ? ': their traffic is refused' : ''}`,
          fix(wp),
        ),
      );
    }
    for (const b of bindings) {
      if (b.via === 'namespace label') continue;
      const why = broken(b.waypoint);
      if (!why) continue;
      out.push(
        result(
          'waypoint',
          'fail',
          `${b.kind.toLowerCase()} ${b.namespace}/${b.name}`,
          `bound to waypoint ${key(b.waypoint)} by ${viaText(b.via)}, which ${why}: its traffic is refused`,
          fix(b.waypoint),
        ),
      );
    }
    return out;
  },
};

const policies: Check = {
  name: 'policy',
  run: (f) => {
    const state = stateOf(f);
    const unenforced = state.list('AuthorizationPolicy').flatMap((p) => {
      const problems = unenforcedTargets(state, p);
      if (problems.length === 0) return [];
      const all = problems.length === (p.spec.targetRefs?.length ?? 0);
      return problems.map((u) =>
        result(
          'policy',
          'warn',
          `${p.metadata.namespace}/${p.metadata.name}`,
          `targetRef ${u.target}: ${u.why}: no waypoint enforces it, ${all ? 'the policy protects nothing' : 'this target is not protected'}`,
          u.hint,
        ),
      );
    });
    const out = f.resources
      .filter((r): r is AuthorizationPolicy => r.kind === 'AuthorizationPolicy')
      .flatMap((p) =>
        l7Warnings(p).map((w) =>
          result(
            'policy',
            'warn',
            `${p.metadata.namespace}/${p.metadata.name}`,
            w,
            'L7 conditions need a waypoint; at L4 the agents apply the rule as described',
          ),
        ),
      );
    const all = f.resources.filter(
      (r): r is AuthorizationPolicy => r.kind === 'AuthorizationPolicy',
    );
    const count = all.length;
    const atWaypoints = all.filter(isWaypointPolicy).length;
    const problems = [...out, ...unenforced];
    return problems.length
      ? problems
      : [
          result(
            'policy',
            'ok',
            'policies',
            atWaypoints === 0
              ? `${count} authorization polic${count === 1 ? 'y' : 'ies'}, all enforceable at L4`
              : `${count} authorization polic${count === 1 ? 'y' : 'ies'}: ${count - atWaypoints} at L4, ${atWaypoints} enforced by waypoints`,
          ),
        ];
  },
};

export const CHECKS: readonly Check[] = [
  servers,
  trust,
  agents,
  clocks,
  host,
  capture,
  certificates,
  waypoints,
  policies,
];

export function runChecks(facts: Facts, checks: readonly Check[] = CHECKS): CheckResult[] {
  return checks.flatMap((c) => c.run(facts));
}
