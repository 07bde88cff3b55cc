/** DESIGN §7: which workloads the agent captures. */
import { LABEL_DATAPLANE_MODE } from './common.js';
import type { Labels } from './selector.js';

/**
 * A workload is captured when it or its namespace carries `meshd.io/dataplane-mode=ambient`
 * and the workload itself does not carry `meshd.io/dataplane-mode=none`.
 */
export function isEnrolled(
  workloadLabels: Labels | undefined,
  namespaceLabels: Labels | undefined,
): boolean {
  const own = workloadLabels?.[LABEL_DATAPLANE_MODE];
  if (own === 'none') return false;
  if (own === 'ambient') return true;
  return namespaceLabels?.[LABEL_DATAPLANE_MODE] === 'ambient';
}
