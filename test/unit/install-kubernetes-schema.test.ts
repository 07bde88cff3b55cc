// The Kubernetes manifests against the Kubernetes API's own OpenAPI schemas (kubernetes-models,
// offline): every document must validate as its kind, and a wrong type or a missing required
// field must be caught, so the check is not vacuous.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { kubernetesManifests } from '../../ctl/install/index.js';

// biome-ignore lint/suspicious/noExplicitAny: documents of several kinds, checked by the schemas
type Doc = any;

const MODELS: Record<string, new (doc: Doc) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'apps/v1/DaemonSet': DaemonSet,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
};

const manifests = (): Doc[] =>
  kubernetesManifests({
    image: 'ghcr.io/meshd/meshd:0.1.0',
    namespace: 'meshd-system',
    trustDomain: 'cluster.local',
    version: '0.1.0',
  }) as Doc[];

function schemaProblem(doc: Doc): string | undefined {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) return `${doc.apiVersion}/${doc.kind}: no schema known to this test`;
  try {
    new Model(doc).validate();
    return undefined;
  } catch (err) {
    return `${doc.kind}/${doc.metadata?.name}: ${(err as Error).message}`;
  }
}

test('every manifest validates against the Kubernetes schema of its kind', () => {
  const docs = manifests();
  assert.ok(docs.length >= 10);
  assert.deepEqual(docs.map(schemaProblem).filter(Boolean), []);
});

test('the schema check catches a wrong type and a missing required field', () => {
  const docs = manifests();
  const ds = docs.find((d) => d.kind === 'DaemonSet');
  ds.spec.template.spec.containers[0].ports = [{ containerPort: 'not-a-number' }];
  assert.match(schemaProblem(ds) ?? '', /containerPort must be integer/);
  const deploy = docs.find((d) => d.kind === 'Deployment');
  delete deploy.spec.selector;
  assert.match(schemaProblem(deploy) ?? '', /required property 'selector'|selector/);
});
