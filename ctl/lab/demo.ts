/**
 * The lab's demo application, a small shop of services in the enrolled namespace:
 *
 *   client ──▶ frontend (Service 10.96.0.10:80) ──▶ backend v1 | v2 (Service 10.96.0.20:80)
 *                                                          └──▶ redis (Service 10.96.0.30:6379)
 *
 * Policies let only frontend call backend and only backend call redis, so `client ▶ backend`
 * is the denied call to try. frontend sits behind the waypoint `demo/waypoint` (a `meshd
 * waypoint` on node 3), whose L7 policy lets everyone GET and nobody POST. The manifests are
 * written beside the lab's state for the reader.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../../daemon/errors.js';
import { packageRoot } from '../../daemon/paths.js';
import type { Progress } from './build.js';
import type { Lab } from './lab.js';
import { cniSocket, DEMO_NAMESPACE, meshctlInLab, startDetached } from './mesh.js';
import type { AppPlacement } from './plan.js';
import { labDir } from './state.js';

const app = (
  name: string,
  nodeIndex: number,
  labels: Record<string, string>,
  serviceAccount: string,
): AppPlacement => ({ name, nodeIndex, labels, serviceAccount });

export const DEMO_APPS: readonly AppPlacement[] = [
  app('client', 1, { app: 'client' }, 'client'),
  app('frontend', 1, { app: 'frontend' }, 'frontend'),
  app('backend-v1', 2, { app: 'backend', version: 'v1' }, 'backend'),
  app('redis', 2, { app: 'redis' }, 'redis'),
  app('backend-v2', 3, { app: 'backend', version: 'v2' }, 'backend'),
  // A waypoint replica is never captured: it speaks HBONE itself.
  app('waypoint', 3, { 'meshd.io/dataplane-mode': 'none' }, 'waypoint'),
];

export const DEMO_WAYPOINT = 'waypoint';

export const DEMO_VIPS = { frontend: '10.96.0.10', backend: '10.96.0.20', redis: '10.96.0.30' };

const service = (
  name: string,
  vip: string,
  port: number,
  targetPort: number,
  protocol: string,
  waypoint?: string,
) =>
  `apiVersion: meshd.io/v1alpha1
kind: Service
metadata: { name: ${name}, namespace: ${DEMO_NAMESPACE}${waypoint ? `, labels: { meshd.io/use-waypoint: ${waypoint} }` : ''} }
spec:
  addresses: [${vip}]
  ports: [{ name: ${protocol.toLowerCase()}, port: ${port}, targetPort: ${targetPort}, protocol: ${protocol} }]
  selector: { matchLabels: { app: ${name} } }
`;

const allowOnly = (target: string, from: string, port: number) =>
  `apiVersion: meshd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: ${target}-allow-${from}, namespace: ${DEMO_NAMESPACE} }
spec:
  selector: { matchLabels: { app: ${target} } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: [cluster.local/ns/${DEMO_NAMESPACE}/sa/${from}] } }]
      to: [{ operation: { ports: [${port}] } }]
`;

const waypointManifests = `apiVersion: meshd.io/v1alpha1
kind: Waypoint
metadata: { name: ${DEMO_WAYPOINT}, namespace: ${DEMO_NAMESPACE} }
spec: { trafficType: service }
---
apiVersion: meshd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: frontend-read-only, namespace: ${DEMO_NAMESPACE} }
spec:
  targetRefs: [{ kind: Service, name: frontend }]
  action: ALLOW
  rules:
    - to: [{ operation: { methods: [GET, HEAD] } }]
`;

export function demoManifests(): string {
  return [
    waypointManifests,
    service('frontend', DEMO_VIPS.frontend, 80, 8080, 'HTTP', DEMO_WAYPOINT),
    service('backend', DEMO_VIPS.backend, 80, 8080, 'HTTP'),
    service('redis', DEMO_VIPS.redis, 6379, 6379, 'TCP'),
    allowOnly('backend', 'frontend', 8080),
    allowOnly('redis', 'backend', 6379),
  ].join('---\n');
}

/** Applies the Services and policies, starts the apps, and waits until a request goes through. */
export async function startDemo(lab: Lab, progress: Progress): Promise<void> {
  const dir = labDir(lab.id);
  const manifests = join(dir, 'demo.yaml');
  writeFileSync(manifests, demoManifests(), { mode: 0o644 });
  await meshctlInLab(lab, 'apply', '-f', manifests);
  progress(
    `demo: Services frontend (behind waypoint ${DEMO_WAYPOINT}), backend, redis and three policies applied (${manifests})`,
  );

  const demoApp = join(packageRoot(), 'dist', 'ctl', 'lab', 'demo-app.js');
  const run = (name: string, argv: string[]) => {
    startDetached(lab, name, argv, {}, join(dir, `app-${name}.log`));
    progress(`demo: ${name} started on ${lab.member(name).node} (${lab.member(name).ipv4})`);
  };
  startDetached(
    lab,
    DEMO_WAYPOINT,
    [process.execPath, join(packageRoot(), 'dist', 'daemon', 'main.js'), 'waypoint'],
    {
      MESHD_WAYPOINT: `${DEMO_NAMESPACE}/${DEMO_WAYPOINT}`,
      MESHD_WAYPOINT_REPLICA: DEMO_WAYPOINT,
      MESHD_AGENT_SOCKET: cniSocket(lab, lab.member(DEMO_WAYPOINT).node),
      MESHD_STATE_DIR: join(dir, 'waypoint'),
    },
    join(dir, `waypoint.log`),
  );
  progress(
    `demo: meshd waypoint ${DEMO_NAMESPACE}/${DEMO_WAYPOINT} started on ${lab.member(DEMO_WAYPOINT).node}`,
  );
  run('redis', [
    '/usr/bin/redis-server',
    '--port',
    '6379',
    '--bind',
    '0.0.0.0',
    '--protected-mode',
    'no',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ]);
  for (const [name, version] of [
    ['backend-v1', 'v1'],
    ['backend-v2', 'v2'],
  ] as const) {
    run(name, [
      process.execPath,
      demoApp,
      'backend',
      '--version',
      version,
      '--name',
      name,
      '--redis',
      `${DEMO_VIPS.redis}:6379`,
    ]);
  }
  run('frontend', [
    process.execPath,
    demoApp,
    'frontend',
    '--name',
    'frontend',
    '--backend',
    `http://${DEMO_VIPS.backend}/`,
  ]);
  await waitForAnswer(lab, 30_000);
  progress('demo: client -> frontend -> backend -> redis answers through the mesh');
}

async function waitForAnswer(lab: Lab, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const res = await lab
      .exec('client', ['curl', '-sS', '-m', '3', `http://${DEMO_VIPS.frontend}/`])
      .then(
        (r) => r.stdout,
        (err: Error) => `error: ${err.message}`,
      );
    if (/^frontend .* visit \d+/.test(res)) return;
    last = res.trim();
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new MeshdError('MESHD_E_LAB', `the demo did not answer within ${timeoutMs} ms: ${last}`, {
    hint: `see the app-*.log and agent-*.log files in ${labDir(lab.id)}`,
  });
}

/** What to try, as commands that work when pasted (a test runs them). */
export function demoNextSteps(lab: Lab): string[] {
  const n1 = lab.plan.nodes[0]?.name ?? 'n1';
  const cmd = (c: string, note: string) => `  ${c.padEnd(72)} # ${note}`;
  return [
    cmd(
      `bin/meshctl lab exec client -- curl -s http://${DEMO_VIPS.frontend}/`,
      'client -> waypoint -> frontend -> backend -> redis, mTLS all the way',
    ),
    cmd(
      `bin/meshctl lab exec client -- curl -s -X POST -w ' %{http_code}\\n' http://${DEMO_VIPS.frontend}/`,
      'denied at the waypoint: 403, GET only',
    ),
    cmd(
      `grep '"status":403' ${join(labDir(lab.id), 'waypoint.log')} | tail -1`,
      'the waypoint names the policy that denied it',
    ),
    cmd(
      `for i in 1 2 3 4; do bin/meshctl lab exec client -- curl -s http://${DEMO_VIPS.frontend}/; done`,
      'backend v1 and v2 take turns',
    ),
    cmd(
      `bin/meshctl lab exec client -- curl -sS -m 3 http://${DEMO_VIPS.backend}/`,
      'denied: only frontend may call backend',
    ),
    cmd(
      `bin/meshctl why client ${DEMO_VIPS.backend}:80 -n ${DEMO_NAMESPACE}`,
      'which policy decides, and why',
    ),
    cmd(`bin/meshctl get workloads -n ${DEMO_NAMESPACE}`, 'also: get services, policies, nodes'),
    cmd('bin/meshctl check', 'is everything healthy?'),
    cmd(`bin/meshctl agent connections --node ${n1}`, "one agent's live connections"),
    cmd(
      `bin/meshctl lab exec ${n1} -- curl -s 127.0.0.1:15020/metrics | grep istio_tcp_connections_opened`,
      'Istio-compatible metrics',
    ),
    cmd('bin/meshctl lab down', 'remove everything'),
  ];
}
