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
