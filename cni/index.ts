/**
 * meshd-cni: the chained CNI plugin (plugin*.ts, docs/cni.md) and the in-namespace redirection
 * rules. Its entry (main.ts) stays small and fast to start: it imports only the plugin*.ts files
 * (node built-ins only), never this index (capture.ts pulls in the daemon).
 */

export {
  applyCapture,
  type CaptureOptions,
  type CaptureRemoval,
  type CaptureStatus,
  captureStatus,
  removeCapture,
} from './capture.js';
export {
  CNI_SUPPORTED_VERSIONS,
  type CniLog,
  type CniLogRecord,
  type CniOutcome,
  cniErrorOutcome,
  handleCni,
  type RunCniOptions,
  runCni,
  versionOutcome,
} from './plugin.js';
export {
  AGENT_MAX_ANSWER_BYTES,
  type AgentCniAnswer,
  type AgentCniRequest,
  type AgentErrorAnswer,
  type AgentRequest,
  type AgentResponse,
  type AgentSend,
  AgentTimeoutError,
  unixSocketSend,
} from './plugin-agent.js';
export {
  CNI_DEFAULTS,
  CNI_ERROR,
  CNI_LATEST_VERSION,
  CNI_TIMEOUT_BOUNDS,
  CNI_VERBS,
  CniError,
  type CniRuntimeEnv,
  type CniVerb,
  type CniVersion,
  type PluginSettings,
  parseCniArgs,
  parseLabels,
  resultAddresses,
  type WorkloadIdentity,
  workloadIdentity,
} from './plugin-config.js';
export { appendLog, readStdin, STDIN_LIMITS, type StdinRead } from './plugin-io.js';
export {
  BUILTIN_CHAINS,
  CAPTURE_CHAINS,
  CAPTURE_COMMENT,
  CAPTURE_DEFAULTS,
  type CaptureFamily,
  type CaptureRuleOptions,
  type CaptureRuleSettings,
  captureApplyText,
  captureRemovalText,
  captureRules,
  HOST_EXCLUDED_INBOUND_PORTS,
  HOST_EXCLUDED_OUTBOUND_PORTS,
  installedCapture,
  type NatTable,
  natTableIsPristine,
  parseNatTable,
  resolveCaptureSettings,
} from './rules.js';
