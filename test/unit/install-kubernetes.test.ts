import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseSettings } from '../../cni/plugin-config.js';
import {
  chainMeshdCni,
  DEFAULT_CNI_ENTRY,
  installCniChain,
  kubernetesManifests,
  manifestHeader,
  meshdCniEntry,
  renderManifests,
} from '../../ctl/install/index.js';
import { agentSpec, ENV_PREFIX, serverSpec } from '../../daemon/config.js';
import { packageRoot } from '../../daemon/paths.js';

const repo = packageRoot();
const meshctl = join(repo, 'dist/ctl/main.js');
const scratch = mkdtempSync(join(tmpdir(), 'meshd-install-k8s-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function run(args: string[]) {
  const r = spawnSync(process.execPath, [meshctl, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field below
type Doc = any;

function parseManifests(text: string): Doc[] {
  const docs = parseAllDocuments(text);
  assert.ok(!Array.isArray(docs) || docs.length > 0, 'no documents');
  return (Array.isArray(docs) ? docs : [docs]).map((d, i) => {
    assert.deepEqual(d.errors, [], `document ${i + 1} is not valid YAML`);
    return d.toJS();
  });
}

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);
const REAL_VARIABLES = new Set(
  [...Object.values(agentSpec), ...Object.values(serverSpec)].map((f) => ENV_PREFIX + f.env),
);

/**
 * A structural check of what the API server and kubelet would reject or silently mis-wire,
 * short of the full OpenAPI schema: every problem found, as "Kind/name: what".
 */
function structuralProblems(docs: Doc[], namespace: string): string[] {
  const problems: string[] = [];
  const find = (kind: string, name: string) =>
    docs.find((d) => d.kind === kind && d.metadata?.name === name);
  for (const d of docs) {
    const id = `${d.kind}/${d.metadata?.name}`;
    if (typeof d.apiVersion !== 'string' || !d.apiVersion) problems.push(`${id}: no apiVersion`);
    if (typeof d.kind !== 'string' || !d.kind) problems.push(`${id}: no kind`);
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(d.metadata?.name ?? '')) {
      problems.push(`${id}: metadata.name missing or not a DNS name`);
    }
    if (!CLUSTER_SCOPED.has(d.kind) && d.metadata?.namespace !== namespace) {
      problems.push(`${id}: not in namespace ${namespace}`);
    }
    if (d.kind === 'ClusterRoleBinding') {
      if (!find('ClusterRole', d.roleRef?.name)) problems.push(`${id}: roleRef to a missing role`);
      for (const s of d.subjects ?? []) {
        if (
          s.kind !== 'ServiceAccount' ||
          s.namespace !== namespace ||
          !find('ServiceAccount', s.name)
        ) {
          problems.push(`${id}: subject ${s.kind}/${s.name} does not exist`);
        }
      }
    }
    if (d.kind === 'ClusterRole') {
      for (const rule of d.rules ?? []) {
        for (const verb of rule.verbs ?? []) {
          if (!['get', 'list', 'watch'].includes(verb))
            problems.push(`${id}: verb ${verb} is not read-only`);
        }
      }
    }
    if (d.kind === 'Service') {
      const target = docs.find(
        (w) =>
          w.kind === 'Deployment' &&
          Object.entries(d.spec.selector ?? {}).every(
            ([k, v]) => w.spec.template.metadata.labels?.[k] === v,
          ),
      );
      if (!target) problems.push(`${id}: selector matches no Deployment`);
      const portNames = (target?.spec.template.spec.containers ?? []).flatMap((c: Doc) =>
        (c.ports ?? []).map((p: Doc) => p.name),
      );
      for (const p of d.spec.ports ?? []) {
        if (!portNames.includes(p.targetPort))
          problems.push(`${id}: targetPort ${p.targetPort} is no container port`);
      }
    }
    if (d.kind !== 'Deployment' && d.kind !== 'DaemonSet') continue;
    const pod = d.spec?.template?.spec ?? {};
    for (const [k, v] of Object.entries(d.spec?.selector?.matchLabels ?? { none: 'none' })) {
      if (d.spec.template.metadata?.labels?.[k] !== v) {
        problems.push(`${id}: selector ${k}=${v} does not match the template's labels`);
      }
    }
    if (!find('ServiceAccount', pod.serviceAccountName)) {
      problems.push(`${id}: serviceAccountName ${pod.serviceAccountName} does not exist`);
    }
    const volumes = new Map<string, Doc>((pod.volumes ?? []).map((v: Doc) => [v.name, v]));
    for (const v of pod.volumes ?? []) {
      if (
        v.persistentVolumeClaim &&
        !find('PersistentVolumeClaim', v.persistentVolumeClaim.claimName)
      ) {
        problems.push(`${id}: volume ${v.name} claims a missing PersistentVolumeClaim`);
      }
    }
    const containers: Doc[] = [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
    if ((pod.containers ?? []).length === 0) problems.push(`${id}: no containers`);
    for (const c of containers) {
      const cid = `${id} container ${c.name}`;
      if (!c.image) problems.push(`${cid}: no image`);
      if (!c.resources?.requests || !c.resources?.limits)
        problems.push(`${cid}: no requests/limits`);
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.has(m.name))
          problems.push(`${cid}: mounts volume ${m.name}, which does not exist`);
      }
      for (const e of c.env ?? []) {
        if (e.name.startsWith(ENV_PREFIX) && !REAL_VARIABLES.has(e.name)) {
          problems.push(`${cid}: ${e.name} is no variable meshd reads`);
        }
      }
    }
    for (const c of pod.containers ?? []) {
      const probe = c.readinessProbe?.httpGet;
      const ports = (c.ports ?? []).map((p: Doc) => p.containerPort);
      if (!probe) problems.push(`${id} container ${c.name}: no HTTP readiness probe`);
      else if (!ports.includes(probe.port))
        problems.push(`${id}: readiness probe on an undeclared port`);
      if (!c.livenessProbe) problems.push(`${id} container ${c.name}: no liveness probe`);
    }
  }
  return problems;
}

const docsOf = (options: Partial<Parameters<typeof kubernetesManifests>[0]> = {}) =>
  kubernetesManifests({
    image: 'ghcr.io/meshd/meshd:0.1.0',
    namespace: 'meshd-system',
    trustDomain: 'cluster.local',
    version: '0.1.0',
    ...options,
  }) as Doc[];

test('meshctl install kubernetes prints YAML documents that pass the structural check', () => {
  const r = run(['install', 'kubernetes']);
  assert.equal(r.status, 0, r.stderr);
  const docs = parseManifests(r.stdout);
  assert.deepEqual(
    docs.map((d) => `${d.kind}/${d.metadata.name}`),
    [
      'Namespace/meshd-system',
      'ServiceAccount/meshd-server',
      'ServiceAccount/meshd-agent',
      'ClusterRole/meshd-server',
      'ClusterRole/meshd-agent',
      'ClusterRoleBinding/meshd-server',
      'ClusterRoleBinding/meshd-agent',
      'PersistentVolumeClaim/meshd-server-data',
      'Service/meshd-server',
      'Deployment/meshd-server',
      'DaemonSet/meshd-agent',
    ],
  );
  assert.deepEqual(structuralProblems(docs, 'meshd-system'), []);
  const version = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version;
  for (const w of docs.filter((d) => d.kind === 'Deployment' || d.kind === 'DaemonSet')) {
    for (const c of [
      ...(w.spec.template.spec.initContainers ?? []),
      ...w.spec.template.spec.containers,
    ]) {
      assert.equal(c.image, `ghcr.io/meshd/meshd:${version}`);
    }
  }
});

test('the structural check is not vacuous: it reports broken wiring', () => {
  const docs = docsOf();
  const ds = docs.find((d) => d.kind === 'DaemonSet');
  ds.spec.template.metadata.labels['app.kubernetes.io/component'] = 'other';
  ds.spec.template.spec.containers[0].volumeMounts.push({ name: 'nope', mountPath: '/x' });
  ds.spec.template.spec.containers[0].env.push({ name: 'MESHD_NODENAME', value: 'typo' });
  docs.find((d) => d.kind === 'ClusterRoleBinding').subjects[0].name = 'ghost';
  const problems = structuralProblems(docs, 'meshd-system');
  assert.ok(
    problems.some((p) => /DaemonSet\/meshd-agent: selector .* does not match/.test(p)),
    problems.join('\n'),
  );
  assert.ok(problems.some((p) => /mounts volume nope, which does not exist/.test(p)));
  assert.ok(problems.some((p) => /MESHD_NODENAME is no variable meshd reads/.test(p)));
  assert.ok(problems.some((p) => /subject ServiceAccount\/ghost does not exist/.test(p)));
});

test('the agent DaemonSet: host network, the capabilities it needs, node paths, every node', () => {
  const ds = docsOf().find((d) => d.kind === 'DaemonSet');
  const pod = ds.spec.template.spec;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
  const agent = pod.containers[0];
  assert.equal(agent.securityContext.privileged, false);
  assert.deepEqual(agent.securityContext.capabilities, {
    drop: ['ALL'],
    add: ['NET_ADMIN', 'SYS_ADMIN', 'NET_RAW'],
  });
  assert.deepEqual(agent.readinessProbe.httpGet, { path: '/healthz/ready', port: 15021 });
  const mount = (name: string) => agent.volumeMounts.find((m: Doc) => m.name === name);
  const volume = (name: string) => pod.volumes.find((v: Doc) => v.name === name);
  assert.equal(mount('netns').mountPropagation, 'HostToContainer');
  assert.equal(volume('netns').hostPath.path, '/var/run/netns');
  assert.equal(volume(mount('run').name).hostPath.path, '/run/meshd');
  assert.equal(volume(mount('state').name).hostPath.path, '/var/lib/meshd/agent');
  const env = Object.fromEntries(agent.env.map((e: Doc) => [e.name, e.value ?? e.valueFrom]));
  assert.deepEqual(env.MESHD_NODE_NAME, { fieldRef: { fieldPath: 'spec.nodeName' } });
  assert.equal(env.MESHD_SERVER, 'meshd-server.meshd-system.svc:15012');
  assert.equal(env.MESHD_CNI_SOCKET, '/run/meshd/cni.sock');
  const init = pod.initContainers[0];
  const initPaths = init.volumeMounts.map((m: Doc) => volume(m.name).hostPath.path).sort();
  assert.deepEqual(initPaths, ['/etc/cni/net.d', '/opt/cni/bin', '/opt/meshd']);
  assert.match(init.command.at(-1), /meshctl install cni --conf-dir \/host\/etc\/cni\/net.d$/);
});

test('the server Deployment: its own non-root user, no capabilities, probes on 15014, Service on 15012', () => {
  const docs = docsOf();
  const pod = docs.find((d) => d.kind === 'Deployment').spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  const server = pod.containers[0];
  assert.deepEqual(server.securityContext.capabilities, { drop: ['ALL'] });
  assert.deepEqual(server.readinessProbe.httpGet, { path: '/healthz/ready', port: 15014 });
  const svc = docs.find((d) => d.kind === 'Service');
  assert.deepEqual(
    svc.spec.ports.map((p: Doc) => p.port),
    [15012, 15014],
  );
});

test('--image, --namespace and --trust-domain reach every place they belong; -o writes a file', () => {
  const out = join(scratch, 'meshd.yaml');
  const flags = [
    '--image',
    'registry.local/meshd:dev',
    '--namespace',
    'mesh',
    '--trust-domain',
    'prod.example',
  ];
  const r = run(['install', 'kubernetes', ...flags, '-o', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '');
  const text = readFileSync(out, 'utf8');
  assert.equal(text, run(['install', 'kubernetes', ...flags]).stdout);
  const docs = parseManifests(text);
  assert.deepEqual(structuralProblems(docs, 'mesh'), []);
  assert.equal(docs[0].metadata.name, 'mesh');
  assert.doesNotMatch(text, /meshd-system|cluster\.local/);
  for (const w of docs.filter((d) => d.kind === 'Deployment' || d.kind === 'DaemonSet')) {
    const containers = w.spec.template.spec.containers;
    assert.equal(containers[0].image, 'registry.local/meshd:dev');
    const td = containers[0].env.find((e: Doc) => e.name === 'MESHD_TRUST_DOMAIN');
    assert.equal(td.value, 'prod.example');
  }
  const bad = run(['install', 'kubernetes', '--namespace', 'Mesh_System']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--namespace "Mesh_System": not a Kubernetes namespace name/);
});

test('the manifests for the defaults (golden)', () => {
  const text = renderManifests(docsOf(), manifestHeader('meshd-system', '0.1.0'));
  const golden = readFileSync(join(repo, 'test/golden/install-kubernetes.yaml'), 'utf8');
  assert.equal(text, golden);
});

function confDir(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(scratch, 'net.d-'));
  for (const [name, json] of Object.entries(files)) {
    writeFileSync(join(dir, name), typeof json === 'string' ? json : JSON.stringify(json));
  }
  return dir;
}

const PTP = {
  cniVersion: '1.0.0',
  name: 'pods',
  plugins: [{ type: 'ptp', ipam: { type: 'host-local' } }, { type: 'portmap' }],
};

test('install cni chains meshd-cni last into the first config file, once; --remove takes it out', () => {
  const dir = confDir({ '10-pods.conflist': PTP, '99-other.conflist': { ...PTP, name: 'other' } });
  const first = run(['install', 'cni', '--conf-dir', dir]);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /10-pods\.conflist\s+chained/);
  const chained = JSON.parse(readFileSync(join(dir, '10-pods.conflist'), 'utf8'));
  assert.deepEqual(
    chained.plugins.map((p: Doc) => p.type),
    ['ptp', 'portmap', 'meshd-cni'],
  );
  // What the runtime hands meshd-cni is accepted by the plugin itself.
  const entry = chained.plugins.at(-1);
  const settings = parseSettings(
    { ...entry, cniVersion: chained.cniVersion, name: chained.name },
    '1.0.0',
  );
  assert.equal(settings.agentSocket, '/run/meshd/cni.sock');
  assert.deepEqual(JSON.parse(readFileSync(join(dir, '99-other.conflist'), 'utf8')), {
    ...PTP,
    name: 'other',
  });

  assert.match(run(['install', 'cni', '--conf-dir', dir]).stdout, /unchanged/);
  const moved = run(['install', 'cni', '--conf-dir', dir, '--agent-socket', '/run/x/cni.sock']);
  assert.match(moved.stdout, /chained/);
  const again = JSON.parse(readFileSync(join(dir, '10-pods.conflist'), 'utf8'));
  assert.equal(again.plugins.filter((p: Doc) => p.type === 'meshd-cni').length, 1);
  assert.equal(again.plugins.at(-1).agentSocket, '/run/x/cni.sock');

  assert.match(run(['install', 'cni', '--conf-dir', dir, '--remove']).stdout, /unchained/);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, '10-pods.conflist'), 'utf8')), PTP);
});

test('install cni turns a single-plugin .conf into a .conflist', () => {
  const dir = confDir({
    '10-bridge.conf': { cniVersion: '0.4.0', name: 'br', type: 'bridge', bridge: 'cni0' },
  });
  const r = run(['install', 'cni', '--conf-dir', dir]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /converted to \.conflist/);
  assert.equal(existsSync(join(dir, '10-bridge.conf')), false);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, '10-bridge.conflist'), 'utf8')), {
    cniVersion: '0.4.0',
    name: 'br',
    plugins: [{ type: 'bridge', bridge: 'cni0' }, meshdCniEntry(DEFAULT_CNI_ENTRY)],
  });
});

test('install cni refuses a missing or broken config and changes nothing', () => {
  const empty = join(scratch, 'empty');
  mkdirSync(empty);
  const none = run(['install', 'cni', '--conf-dir', empty]);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /no CNI network configuration .* in .*empty.*primary CNI plugin/);
  const dir = confDir({ '10-bad.conflist': '{"plugins": [' });
  const broken = run(['install', 'cni', '--conf-dir', dir]);
  assert.equal(broken.status, 1);
  assert.match(broken.stderr, /10-bad\.conflist: not valid JSON/);
  assert.equal(readFileSync(join(dir, '10-bad.conflist'), 'utf8'), '{"plugins": [');
  assert.throws(() => chainMeshdCni({ name: 'x' }, {}), /neither a network configuration list/);
  assert.throws(() => installCniChain(dir, DEFAULT_CNI_ENTRY), /not valid JSON/);
});
