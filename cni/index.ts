/**
 * meshd-cni: the chained CNI plugin (issue 6) and the in-namespace redirection rules.
 * Its entry (main.ts) stays small and fast to start: it imports only cni/ and model/.
 */

export {
  applyCapture,
  type CaptureOptions,
  type CaptureRemoval,
  type CaptureStatus,
  captureStatus,
  removeCapture,
} from './capture.js';
export { CNI_SUPPORTED_VERSIONS, type CniOutcome, handleCni } from './plugin.js';
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
