/**
 * The resource model (pure): the kinds in Kubernetes shape, their validation with field paths,
 * label selectors, manifests (multi-document YAML/JSON) and MeshState, the indexed in-memory
 * state the agent, waypoints and meshctl work from. docs/resources.md is the reference.
 */

export {
  API_VERSION,
  APP_PROTOCOLS,
  type AppProtocol,
  DATAPLANE_MODES,
  LABEL_DATAPLANE_MODE,
  LABEL_USE_WAYPOINT,
  LABEL_WAYPOINT,
  type Metadata,
  parseDurationMs,
  ROOT_NAMESPACE,
} from './common.js';
export { isEnrolled } from './enrollment.js';
export {
  canonicalIp,
  checkIpAddress,
  checkIpBlock,
  formatIp,
  hostPort,
  type IpAddress,
  type IpBlock,
  ipBlockContains,
  ipKey,
  parseIp,
  parseIpBlock,
} from './ip.js';
export type { FieldError, PathSegment } from './issues.js';
export {
  AUTHORIZATION_ACTIONS,
  type AuthorizationAction,
  type AuthorizationOperation,
  type AuthorizationPolicy,
  type AuthorizationRule,
  type AuthorizationSource,
} from './kinds/authorization-policy.js';
export {
  HTTP_METHODS,
  type HTTPBackendRef,
  type HTTPRoute,
  type HTTPRouteMatch,
  type HTTPRouteRule,
  type HttpMethod,
  PATH_MATCH_TYPES,
} from './kinds/http-route.js';
export type { Namespace } from './kinds/namespace.js';
export { MTLS_MODES, type MtlsMode, type PeerAuthentication } from './kinds/peer-authentication.js';
export {
  LOAD_BALANCING_MODES,
  type LoadBalancingMode,
  type Service,
  type ServicePort,
} from './kinds/service.js';
export {
  TRAFFIC_TYPES,
  type TrafficType,
  type Waypoint,
  waypointServes,
} from './kinds/waypoint.js';
export { type Workload, type WorkloadPort, workloadIdentity } from './kinds/workload.js';
export {
  formatFieldErrors,
  formatManifestError,
  InvalidResourceError,
  type ManifestError,
  type ManifestFile,
  type ManifestOptions,
  type ManifestOrigin,
  type ManifestResult,
  parseManifestSet,
  parseManifests,
} from './manifest.js';
export { checkDnsLabel, checkDnsSubdomain, checkLabelKey, checkLabelValue } from './names.js';
export {
  compareRefs,
  isKind,
  isNamespaced,
  KINDS,
  type Kind,
  keyToRef,
  type Resource,
  type ResourceOf,
  type ResourceRef,
  refKey,
  refToString,
  resourceRef,
  sortResources,
} from './resource.js';
export {
  isEmptySelector,
  type LabelSelector,
  type LabelSelectorRequirement,
  type Labels,
  matches,
  parseLabelSelector,
  SELECTOR_OPERATORS,
  type SelectorOperator,
  selectorToString,
} from './selector.js';
export {
  DEFAULT_MTLS_MODE,
  type EffectiveMtls,
  MeshState,
  type MeshStateJSON,
  type NamespacedName,
  type ServiceMatch,
  STATE_FORMAT,
  type StateChange,
  type StateEvent,
  type WaypointBinding,
} from './state.js';
export { type ValidationResult, validateResource } from './validate.js';
