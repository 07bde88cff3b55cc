/** TypeScript shapes of the Identity API messages (camelCase, int64 as number, bytes as Buffer). */
export interface JoinRequest {
  token: string;
  csr: Buffer;
}
export interface TrustBundle {
  trustDomain: string;
  roots: string[];
}
export interface JoinResponse {
  node: string;
  certChain: string[];
  trustBundle: TrustBundle;
}
export interface CreateCertificateRequest {
  csr: Buffer;
  ttlSeconds: number;
}
export interface CreateCertificateResponse {
  certChain: string[];
}
export type GetTrustBundleRequest = Record<string, never>;
export interface CreateJoinTokenRequest {
  node: string;
  ttlSeconds: number;
}
export interface CreateJoinTokenResponse {
  token: string;
  expiresAtUnix: number;
}

export interface ResourceRef {
  kind: string;
  namespace: string;
  name: string;
}
export interface ApplyRequest {
  resources: string[];
  dryRun: boolean;
}
export interface ApplyResult {
  ref: ResourceRef;
  action: 'created' | 'configured' | 'unchanged';
  resourceVersion: string;
}
export interface ApplyResponse {
  results: ApplyResult[];
  revision: number;
}
export interface GetRequest {
  ref: ResourceRef;
}
export interface GetResponse {
  resource: string;
}
export interface ListRequest {
  kind: string;
  namespace: string;
}
export interface ListResponse {
  resources: string[];
  revision: number;
}
export interface DeleteRequest {
  ref: ResourceRef;
  resourceVersion: string;
}
export interface DeleteResponse {
  revision: number;
}
export interface WatchRequest {
  node: string;
  fromRevision: number;
  sentAtUnixMs?: number;
  version?: string;
}
export interface Change {
  type: 'put' | 'delete';
  resource: string;
}
export interface WatchResponse {
  type: 'snapshot' | 'changes';
  revision: number;
  resources: string[];
  changes: Change[];
}

export type ListNodesRequest = Record<string, never>;

export interface NodeStatus {
  name: string;
  connected: boolean;
  peer: string;
  connectedSince: string;
  disconnectedAt: string;
  revisionSent: number;
  clockSkewMs: number;
  workloads: number;
  version: string;
}

export interface ListNodesResponse {
  nodes: NodeStatus[];
  revision: number;
  serverTimeUnixMs: number;
}
