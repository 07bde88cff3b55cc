/**
 * `meshctl waypoint generate`: a Kubernetes Deployment running `meshd waypoint` replicas of one
 * Waypoint. Each pod has its own network namespace and IP (no host network): it serves HBONE on
 * its pod IP and registers, through the agent of its node (its unix socket, a hostPath mount of
 * /run/meshd), under the pod's name, replacing the Workload meshd-cni registered for the pod.
 * The pod is labelled meshd.io/dataplane-mode=none so the agent never captures it, and never
 * meshd.io/waypoint: that label is the replica's "ready", set by the replica itself once it serves.
 */
import { LABEL_DATAPLANE_MODE, type NamespacedName } from '../../daemon/model/index.js';
import { installError } from '../install/files.js';
import { IMAGE_REPOSITORY } from '../install/kubernetes.js';

export interface WaypointDeploymentOptions {
  waypoint: NamespacedName;
  replicas: number;
  image: string;
  /** MESHD_DRAIN_TIMEOUT in seconds; the grace period is well above it. */
  drainSeconds?: number;
}

export const WAYPOINT_PORTS = { hbone: 15008, metrics: 15020, readiness: 15021 } as const;
/** The agent's MESHD_CNI_SOCKET as `meshctl install kubernetes` and systemd set it. */
export const AGENT_SOCKET_DIR = '/run/meshd';
const DEFAULT_DRAIN_SECONDS = 5;
/** Deregistration and the agents' next state after the drain; SIGKILL comes after this. */
const GRACE_MARGIN_SECONDS = 25;

export const defaultWaypointImage = (version: string) => `${IMAGE_REPOSITORY}:${version}`;

function check(o: WaypointDeploymentOptions): void {
  if (!Number.isInteger(o.replicas) || o.replicas < 0 || o.replicas > 100) {
    throw installError(
      `--replicas ${o.replicas}: not a number of replicas`,
      'a whole number, 0 to 100',
    );
  }
  if (!/^\S+$/.test(o.image)) {
    throw installError(`--image ${JSON.stringify(o.image)}: empty or with spaces`, 'REPO:TAG');
  }
}

export function waypointDeployment(o: WaypointDeploymentOptions): Record<string, unknown> {
  check(o);
  const { namespace, name } = o.waypoint;
  const drain = o.drainSeconds ?? DEFAULT_DRAIN_SECONDS;
  const selector = {
    'app.kubernetes.io/name': 'meshd-waypoint',
    'app.kubernetes.io/instance': name,
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace,
      labels: { ...selector, 'app.kubernetes.io/component': 'waypoint' },
    },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: selector },
      // One replica keeps serving while the next starts: bound traffic is never refused.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: {
            ...selector,
            'app.kubernetes.io/component': 'waypoint',
            // Never captured: a waypoint's traffic is already HBONE.
            [LABEL_DATAPLANE_MODE]: 'none',
          },
        },
        spec: {
          hostNetwork: false,
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: drain + GRACE_MARGIN_SECONDS,
          // Replicas on different nodes: a node's agent going away takes one replica with it.
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                {
                  weight: 100,
                  podAffinityTerm: {
                    labelSelector: { matchLabels: selector },
                    topologyKey: 'kubernetes.io/hostname',
                  },
                },
              ],
            },
          },
          // The agent's socket is root's (mode 0600): root in the container, no capabilities.
          securityContext: {
            runAsUser: 0,
            runAsGroup: 0,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'waypoint',
              image: o.image,
              command: ['/opt/meshd/bin/meshd', 'waypoint'],
              env: [
                { name: 'MESHD_WAYPOINT', value: `${namespace}/${name}` },
                {
                  name: 'MESHD_WAYPOINT_REPLICA',
                  valueFrom: { fieldRef: { fieldPath: 'metadata.name' } },
                },
                {
                  name: 'MESHD_WAYPOINT_ADDRESS',
                  valueFrom: { fieldRef: { fieldPath: 'status.podIP' } },
                },
                { name: 'MESHD_AGENT_SOCKET', value: `${AGENT_SOCKET_DIR}/cni.sock` },
                { name: 'MESHD_STATE_DIR', value: '/var/lib/meshd/waypoint' },
                { name: 'MESHD_DRAIN_TIMEOUT', value: `${drain}s` },
              ],
              ports: [
                { name: 'hbone', containerPort: WAYPOINT_PORTS.hbone, protocol: 'TCP' },
                { name: 'http-metrics', containerPort: WAYPOINT_PORTS.metrics, protocol: 'TCP' },
                { name: 'http-ready', containerPort: WAYPOINT_PORTS.readiness, protocol: 'TCP' },
              ],
              readinessProbe: {
                httpGet: { path: '/healthz/ready', port: WAYPOINT_PORTS.readiness },
                periodSeconds: 5,
                failureThreshold: 3,
              },
              livenessProbe: {
                tcpSocket: { port: WAYPOINT_PORTS.readiness },
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
                { name: 'agent-socket', mountPath: AGENT_SOCKET_DIR, readOnly: true },
                { name: 'state', mountPath: '/var/lib/meshd/waypoint' },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            { name: 'agent-socket', hostPath: { path: AGENT_SOCKET_DIR, type: 'Directory' } },
            { name: 'state', emptyDir: {} },
            { name: 'tmp', emptyDir: {} },
          ],
        },
      },
    },
  };
}
