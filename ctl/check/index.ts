export { CHECKS, type Check, runChecks, SKEW_FAIL_MS, SKEW_WARN_MS } from './checks.js';
export type { AgentDump, CheckResult, CheckStatus, Facts } from './facts.js';
export { gatherFacts } from './gather.js';
