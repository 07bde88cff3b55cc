export { addressesOf, type CniResult } from './cni.js';
export { DEMO_APPS, DEMO_VIPS, demoManifests, demoNextSteps } from './demo.js';
export { Lab, type LabMember, type LabOptions, withLab } from './lab.js';
export { DEMO_NAMESPACE, type LabMesh } from './mesh.js';
export { cniNetworkConfig, LAB_PREFIX, type LabPlan, planLab, podRoutes } from './plan.js';
export { LAB_STATE_ROOT, listLabIds, loadState } from './state.js';
export { destroyAllLabsSync } from './teardown.js';
