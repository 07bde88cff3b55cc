/**
 * meshd-cni: the chained CNI plugin (issue 6) and the in-namespace redirection rules.
 * Its entry (main.ts) stays small and fast to start: it imports only cni/ and model/.
 */
export { CNI_SUPPORTED_VERSIONS, type CniOutcome, handleCni } from './plugin.js';
