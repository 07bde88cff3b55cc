/** What `meshctl install` and `meshctl completion` generate: files, manifests, scripts. */
export {
  type ChainResult,
  chainMeshdCni,
  DEFAULT_CNI_ENTRY,
  installCniChain,
  MESHD_CNI_TYPE,
  meshdCniEntry,
  primaryConfigFile,
  unchainMeshdCni,
} from './cni-chain.js';
export {
  bashCompletion,
  type CompletionNode,
  completionTree,
  rootOf,
  zshCompletion,
} from './completion.js';
export { envFileText, envValue } from './env.js';
export {
  type InstallAction,
  type InstallFile,
  type InstallResult,
  installError,
  targetPath,
  writeInstallFiles,
} from './files.js';
export {
  IMAGE_REPOSITORY,
  installCniScript,
  KUBERNETES_NAMES,
  type KubernetesOptions,
  kubernetesManifests,
  manifestHeader,
  renderManifests,
} from './kubernetes.js';
export {
  agentEnvText,
  DEFAULT_AGENT_VALUES,
  DEFAULT_PREFIX,
  defaultSourceDir,
  ROLES,
  type Role,
  SYSTEMD_PATHS,
  type SystemdInstallOptions,
  serverEnvText,
  systemdInstallFiles,
  unitText,
  WAYPOINT_HOST_PORTS,
  WAYPOINT_UNIT,
  waypointEnvText,
  waypointInstance,
  waypointInstanceEnvText,
  waypointUnitText,
} from './systemd.js';
