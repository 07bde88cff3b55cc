/**
 * The manifests `meshctl install kubernetes` prints: a namespace, service accounts and read-only
 * RBAC, the server as a Deployment behind a Service, and the agent as a DaemonSet on the host
 * network whose init container installs meshd-cni and chains it into the node's CNI config.
 * Secrets (the CA, join tokens) are not part of them: the operator creates those from files
 * (docs/operations.md).
 */
import { stringify } from 'yaml';
import { isTrustDomain } from '../../daemon/identity/index.js';
import { installError } from './files.js';

export interface KubernetesOptions {
  image: string;
  namespace: string;
  trustDomain: string;
  /** meshd's version: the name of its directory on the nodes (/opt/meshd/<version>). */
  version: string;
}

export const IMAGE_REPOSITORY = 'ghcr.io/meshd/meshd';

/** Names the operator creates objects under (see docs/operations.md). */
export const KUBERNETES_NAMES = {
  server: 'meshd-server',
  agent: 'meshd-agent',
  caSecret: 'meshd-ca',
  joinTokensSecret: 'meshd-join-tokens',
  trustBundle: 'meshd-trust-bundle',
  serverData: 'meshd-server-data',
} as const;

/** Inside the image: the meshd checkout (bin/, dist/, node_modules/ with Node 24). */
const IMAGE_PREFIX = '/opt/meshd';
const PORTS = { grpc: 15012, monitoring: 15014, metrics: 15020, readiness: 15021 } as const;

type Manifest = Record<string, unknown>;

function checkOptions(o: KubernetesOptions): void {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(o.namespace)) {
    throw installError(
      `--namespace ${JSON.stringify(o.namespace)}: not a Kubernetes namespace name`,
      'a DNS label: lowercase letters, digits and "-", at most 63',
    );
  }
  if (!isTrustDomain(o.trustDomain)) {
    throw installError(
      `--trust-domain ${JSON.stringify(o.trustDomain)}: not a trust domain`,
      'use lowercase letters, digits, ".", "-", "_" (the one `meshctl ca init` was given)',
    );
  }
  if (!/^\S+$/.test(o.image)) {
    throw installError(`--image ${JSON.stringify(o.image)}: empty or with spaces`, 'REPO:TAG');
  }
  if (!/^[A-Za-z0-9_.+-]+$/.test(o.version)) {
    throw installError(`version ${JSON.stringify(o.version)}: not a plain version`, 'e.g. 0.1.0');
  }
}

const labels = (component: string) => ({
  'app.kubernetes.io/name': 'meshd',
  'app.kubernetes.io/component': component,
});

const meta = (name: string, namespace: string, component: string) => ({
  name,
  namespace,
  labels: labels(component),
});

const hostPath = (name: string, path: string, type: string) => ({
  name,
  hostPath: { path, type },
});

function namespaceDoc(o: KubernetesOptions): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: o.namespace,
      labels: {
        'app.kubernetes.io/name': 'meshd',
        // The agent needs the host network, host paths and NET_ADMIN/SYS_ADMIN.
        'pod-security.kubernetes.io/enforce': 'privileged',
      },
    },
  };
}

function serviceAccount(name: string, o: KubernetesOptions, component: string): Manifest {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(name, o.namespace, component) };
}

function clusterRole(name: string, component: string, rules: unknown[]): Manifest {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name, labels: labels(component) },
    rules,
  };
}

function clusterRoleBinding(name: string, o: KubernetesOptions, component: string): Manifest {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name, labels: labels(component) },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
    subjects: [{ kind: 'ServiceAccount', name, namespace: o.namespace }],
  };
}

const READ = ['get', 'list', 'watch'];

function serverDocs(o: KubernetesOptions): Manifest[] {
  const name = KUBERNETES_NAMES.server;
  return [
    {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: meta(KUBERNETES_NAMES.serverData, o.namespace, 'server'),
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(name, o.namespace, 'server'),
      spec: {
        selector: labels('server'),
        ports: [
          { name: 'grpc', port: PORTS.grpc, targetPort: 'grpc', appProtocol: 'grpc' },
          { name: 'http-monitoring', port: PORTS.monitoring, targetPort: 'http-monitoring' },
        ],
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta(name, o.namespace, 'server'),
      spec: {
        replicas: 1,
        // The file store is one writer on one volume: the old pod stops before the new starts.
        strategy: { type: 'Recreate' },
        selector: { matchLabels: labels('server') },
        template: {
          metadata: { labels: labels('server') },
          spec: {
            serviceAccountName: name,
            terminationGracePeriodSeconds: 30,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 10001,
              runAsGroup: 10001,
              fsGroup: 10001,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: 'server',
                image: o.image,
                command: [`${IMAGE_PREFIX}/bin/meshd`, 'server'],
                env: [
                  { name: 'MESHD_TRUST_DOMAIN', value: o.trustDomain },
                  { name: 'MESHD_CA_DIR', value: '/etc/meshd/ca' },
                  { name: 'MESHD_DATA_DIR', value: '/var/lib/meshd/server' },
                  { name: 'MESHD_GRPC_PORT', value: String(PORTS.grpc) },
                  { name: 'MESHD_MONITORING_PORT', value: String(PORTS.monitoring) },
                ],
                ports: [
                  { name: 'grpc', containerPort: PORTS.grpc, protocol: 'TCP' },
                  { name: 'http-monitoring', containerPort: PORTS.monitoring, protocol: 'TCP' },
                ],
                readinessProbe: {
                  httpGet: { path: '/healthz/ready', port: PORTS.monitoring },
                  periodSeconds: 5,
                  failureThreshold: 3,
                },
                livenessProbe: {
                  tcpSocket: { port: PORTS.monitoring },
                  initialDelaySeconds: 10,
                  periodSeconds: 10,
                  failureThreshold: 6,
                },
                resources: {
                  requests: { cpu: '100m', memory: '128Mi' },
                  limits: { memory: '512Mi' },
                },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [
                  { name: 'ca', mountPath: '/etc/meshd/ca', readOnly: true },
                  { name: 'data', mountPath: '/var/lib/meshd/server' },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              { name: 'ca', secret: { secretName: KUBERNETES_NAMES.caSecret, defaultMode: 0o440 } },
              { name: 'data', persistentVolumeClaim: { claimName: KUBERNETES_NAMES.serverData } },
              { name: 'tmp', emptyDir: {} },
            ],
          },
        },
      },
    },
  ];
}

/**
 * The init container's script: copy this version's meshd tree onto the node once (the CNI
 * runtime runs meshd-cni there, outside any container), point /opt/cni/bin/meshd-cni at it
 * with an atomic rename, and chain meshd-cni into the node's primary CNI config.
 */
export function installCniScript(version: string): string {
  return [
    'set -eu',
    `dest=/host/opt/meshd/${version}`,
    'if [ ! -x "$dest/bin/meshd-cni" ]; then',
    '  rm -rf "$dest.tmp"',
    `  cp -R ${IMAGE_PREFIX} "$dest.tmp"`,
    '  mv "$dest.tmp" "$dest"',
    'fi',
    `ln -sfn /opt/meshd/${version}/bin/meshd-cni /host/opt/cni/bin/.meshd-cni.tmp`,
    'mv -T /host/opt/cni/bin/.meshd-cni.tmp /host/opt/cni/bin/meshd-cni',
    `exec ${IMAGE_PREFIX}/bin/meshctl install cni --conf-dir /host/etc/cni/net.d`,
  ].join('\n');
}

/** Runs the agent with this node's join token, when the operator provided one for it. */
const AGENT_SCRIPT = [
  'token="/etc/meshd/join-tokens/$MESHD_NODE_NAME"',
  'if [ -r "$token" ]; then MESHD_JOIN_TOKEN=$(cat "$token"); export MESHD_JOIN_TOKEN; fi',
  `exec ${IMAGE_PREFIX}/bin/meshd agent`,
].join('\n');

function agentDocs(o: KubernetesOptions): Manifest[] {
  const name = KUBERNETES_NAMES.agent;
  const serverAddress = `${KUBERNETES_NAMES.server}.${o.namespace}.svc:${PORTS.grpc}`;
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: meta(name, o.namespace, 'agent'),
      spec: {
        selector: { matchLabels: labels('agent') },
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
        template: {
          metadata: { labels: labels('agent') },
          spec: {
            serviceAccountName: name,
            hostNetwork: true,
            // Resolve meshd-server.<namespace>.svc through cluster DNS from the host network.
            dnsPolicy: 'ClusterFirstWithHostNet',
            // CNI namespaces are files in /var/run/netns: no need to see the host's processes.
            hostPID: false,
            priorityClassName: 'system-node-critical',
            terminationGracePeriodSeconds: 30,
            tolerations: [{ operator: 'Exists' }],
            initContainers: [
              {
                name: 'install-cni',
                image: o.image,
                command: ['/bin/sh', '-c', installCniScript(o.version)],
                securityContext: {
                  runAsUser: 0,
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
                resources: {
                  requests: { cpu: '10m', memory: '64Mi' },
                  limits: { memory: '256Mi' },
                },
                volumeMounts: [
                  { name: 'host-meshd', mountPath: '/host/opt/meshd' },
                  { name: 'cni-bin', mountPath: '/host/opt/cni/bin' },
                  { name: 'cni-conf', mountPath: '/host/etc/cni/net.d' },
                ],
              },
            ],
            containers: [
              {
                name: 'agent',
                image: o.image,
                command: ['/bin/sh', '-c', AGENT_SCRIPT],
                env: [
                  {
                    name: 'MESHD_NODE_NAME',
                    valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } },
                  },
                  { name: 'MESHD_SERVER', value: serverAddress },
                  { name: 'MESHD_TRUST_DOMAIN', value: o.trustDomain },
                  { name: 'MESHD_CA_BUNDLE', value: '/etc/meshd/trust-bundle/bundle.pem' },
                  { name: 'MESHD_STATE_DIR', value: '/var/lib/meshd/agent' },
                  { name: 'MESHD_CNI_SOCKET', value: '/run/meshd/cni.sock' },
                ],
                ports: [
                  { name: 'http-metrics', containerPort: PORTS.metrics, protocol: 'TCP' },
                  { name: 'http-ready', containerPort: PORTS.readiness, protocol: 'TCP' },
                ],
                readinessProbe: {
                  httpGet: { path: '/healthz/ready', port: PORTS.readiness },
                  periodSeconds: 5,
                  failureThreshold: 3,
                },
                // Not on /healthz/ready: an agent waiting for the server is alive and serving
                // from its saved state; restarting it would not help.
                livenessProbe: {
                  tcpSocket: { port: PORTS.readiness },
                  initialDelaySeconds: 10,
                  periodSeconds: 10,
                  failureThreshold: 6,
                },
                resources: {
                  requests: { cpu: '100m', memory: '128Mi' },
                  limits: { memory: '1Gi' },
                },
                securityContext: {
                  privileged: false,
                  runAsUser: 0,
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'SYS_ADMIN', 'NET_RAW'] },
                  seccompProfile: { type: 'RuntimeDefault' },
                },
                volumeMounts: [
                  {
                    name: 'netns',
                    mountPath: '/var/run/netns',
                    mountPropagation: 'HostToContainer',
                    readOnly: true,
                  },
                  { name: 'state', mountPath: '/var/lib/meshd/agent' },
                  { name: 'run', mountPath: '/run/meshd' },
                  { name: 'xtables-lock', mountPath: '/run/xtables.lock' },
                  { name: 'trust-bundle', mountPath: '/etc/meshd/trust-bundle', readOnly: true },
                  { name: 'join-tokens', mountPath: '/etc/meshd/join-tokens', readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              hostPath('netns', '/var/run/netns', 'DirectoryOrCreate'),
              hostPath('state', '/var/lib/meshd/agent', 'DirectoryOrCreate'),
              hostPath('run', '/run/meshd', 'DirectoryOrCreate'),
              hostPath('xtables-lock', '/run/xtables.lock', 'FileOrCreate'),
              hostPath('host-meshd', '/opt/meshd', 'DirectoryOrCreate'),
              hostPath('cni-bin', '/opt/cni/bin', 'DirectoryOrCreate'),
              hostPath('cni-conf', '/etc/cni/net.d', 'DirectoryOrCreate'),
              { name: 'trust-bundle', configMap: { name: KUBERNETES_NAMES.trustBundle } },
              {
                name: 'join-tokens',
                secret: {
                  secretName: KUBERNETES_NAMES.joinTokensSecret,
                  optional: true,
                  defaultMode: 0o400,
                },
              },
              { name: 'tmp', emptyDir: {} },
            ],
          },
        },
      },
    },
  ];
}

/** Every document, in the order kubectl apply needs them (namespace first). */
export function kubernetesManifests(o: KubernetesOptions): Manifest[] {
  checkOptions(o);
  const { server, agent } = KUBERNETES_NAMES;
  return [
    namespaceDoc(o),
    serviceAccount(server, o, 'server'),
    serviceAccount(agent, o, 'agent'),
    // Read-only, for the Kubernetes watch mode (DESIGN §13); neither role writes to the API.
    clusterRole(server, 'server', [
      { apiGroups: [''], resources: ['namespaces', 'nodes', 'pods'], verbs: READ },
    ]),
    clusterRole(agent, 'agent', [
      { apiGroups: [''], resources: ['pods'], verbs: READ },
      { apiGroups: [''], resources: ['nodes'], verbs: ['get'] },
    ]),
    clusterRoleBinding(server, o, 'server'),
    clusterRoleBinding(agent, o, 'agent'),
    ...serverDocs(o),
    ...agentDocs(o),
  ];
}

/** The comment above the documents: what the operator creates first. */
export function manifestHeader(namespace: string, version: string): string[] {
  return [
    `meshd ${version}: generated by meshctl install kubernetes (docs/operations.md).`,
    `Create first: Secret ${namespace}/${KUBERNETES_NAMES.caSecret} (the CA directory), ConfigMap`,
    `${namespace}/${KUBERNETES_NAMES.trustBundle} (bundle.pem) and, per node, a key of Secret`,
    `${namespace}/${KUBERNETES_NAMES.joinTokensSecret} named after the node holding its join token.`,
  ];
}

/** YAML multi-document text, `---` before each document. */
export function renderManifests(docs: readonly Manifest[], header: readonly string[]): string {
  const head = header.map((l) => `# ${l}`.trimEnd()).join('\n');
  const body = docs
    .map((d) => `---\n${stringify(d, { lineWidth: 0, aliasDuplicateObjects: false })}`)
    .join('');
  return `${head}\n${body}`;
}
