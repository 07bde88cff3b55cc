/** Keys, CSRs, SPIFFE X.509-SVID rules, signing, verification and the trust bundle. */

export {
  CA_DEFAULTS,
  CA_FILES,
  CaFilesError,
  finishRotation,
  type InitOptions,
  initCa,
  type LoadedCa,
  loadCa,
  rotateRoot,
} from './ca-files.js';
export { type AcceptedCsr, CsrError, createCsr, parseCsr } from './csr.js';
export {
  BACKDATE_MS,
  type CaMaterial,
  createIntermediateCa,
  createRootCa,
  leafValidity,
  signSvid,
} from './issue.js';
export {
  type BackoffOptions,
  type CertificateIssuer,
  CertificateManager,
  type CertificateManagerOptions,
  type CertificateState,
  type CertificateStatus,
  type Clock,
  type IssuedCertificate,
  type ManagerLogger,
  type RotateListener,
  type TimerHandle,
  type Timers,
} from './manager.js';
export {
  exportPrivateKeyPem,
  fromPemAll,
  generateKeyPair,
  importKeyPairPem,
  type KeyPair,
  toPem,
} from './pki.js';
export {
  adminId,
  classify,
  controlPlaneId,
  type IdentityKind,
  isTrustDomain,
  nodeId,
  type ParsedSpiffeId,
  parseSpiffeId,
  type SpiffeId,
  SpiffeIdError,
  workloadId,
} from './spiffe.js';
export {
  checkSvidConformance,
  SvidError,
  type SvidInfo,
  spiffeIdOfPeer,
  svidInfo,
  verifySvid,
} from './svid.js';
