/** The text of `meshctl waypoint list` and `status`: kubectl-like tables, problems with hints. */
import { formatTable } from '../output.js';
import type { BoundObject, WaypointRow, WaypointView } from './view.js';

const MARK = { fail: '×', warn: '‼' } as const;

export function waypointListTable(rows: readonly WaypointRow[]): string {
  if (rows.length === 0) return 'no waypoints found';
  return formatTable(
    ['namespace', 'name', 'traffic-type', 'ready', 'bound'],
    rows.map((r) => [
      r.namespace,
      r.name,
      r.trafficType,
      `${r.ready}/${r.registered}`,
      `${r.services} svc, ${r.workloads} wl`,
    ]),
  );
}

const indent = (text: string) =>
  text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');

const boundRows = (bound: readonly BoundObject[]) =>
  bound.map((b) => [b.kind.toLowerCase(), b.name, b.via]);

export function waypointStatusText(v: WaypointView): string {
  const ready = v.replicas.filter((r) => r.ready).length;
  const lines = [
    `Waypoint ${v.namespace}/${v.name}`,
    `  traffic type: ${v.trafficType ?? '- (the Waypoint does not exist)'}`,
    `  replicas:     ${ready} ready of ${v.replicas.length} registered${v.wantedReplicas !== undefined ? ` (spec.replicas ${v.wantedReplicas})` : ''}`,
    '',
    'Replicas:',
    v.replicas.length
      ? indent(
          formatTable(
            ['name', 'node', 'address', 'ready'],
            v.replicas.map((r) => [
              r.name,
              r.node,
              r.addresses.join(',') || '-',
              r.ready ? 'yes' : 'no',
            ]),
          ),
        )
      : '  none registered',
    '',
    'Bound (traffic goes through this waypoint):',
    v.bound.length ? indent(formatTable(['kind', 'name', 'via'], boundRows(v.bound))) : '  nothing',
    '',
    'Policies (targetRefs: this waypoint or its services):',
    v.policies.length
      ? indent(
          formatTable(
            ['name', 'action', 'targets'],
            v.policies.map((p) => [p.name, p.action, p.targets.join(',')]),
          ),
        )
      : '  none: every request passes at L7 (L4 policy still applies at the destination)',
    '',
    'Problems:',
  ];
  if (v.problems.length === 0) lines.push('  none');
  for (const p of v.problems) {
    lines.push(`  ${MARK[p.severity]} ${p.message}`);
    if (p.hint) lines.push(`      hint: ${p.hint}`);
  }
  return lines.join('\n');
}
