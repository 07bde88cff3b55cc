/**
 * The agent's resident memory when idle with many enrolled workloads: a one-node lab whose
 * workloads are all created through the CNI chain into the enrolled namespace; once all are
 * captured and the agent has settled, VmRSS is sampled for a few seconds.
 */
import { withLab } from '../../ctl/lab/index.js';
import { capturedWorkloads } from './bench-lab.js';
import { isAgent } from './cases.js';
import { netnsPids, rssMiB } from './proc-stats.js';
import type { IdleMemory } from './report.js';
import { median } from './stats.js';

// As npm run bench:memory: long enough for start-up's garbage to be collected and one memory
// trim (10 s ticks) after the last workload was captured.
const SETTLE_MS = 20_000;
const SAMPLES = 10;
const SAMPLE_EVERY_MS = 500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function idleAgentMemory(
  workloads: number,
  progress: (message: string) => void,
): Promise<IdleMemory> {
  return withLab({ nodes: 1, workloads, mesh: true, progress }, async (lab) => {
    const deadline = Date.now() + 30_000;
    let captured: string[] = [];
    while (Date.now() < deadline) {
      captured = await capturedWorkloads(lab, 'n1').catch(() => []);
      if (captured.length >= workloads) break;
      await sleep(250);
    }
    const agent = (await netnsPids(lab.member('n1').netns)).find(isAgent);
    if (!agent) throw new Error('no meshd agent process in node n1');
    await sleep(SETTLE_MS);
    const samples: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      samples.push(Math.round(rssMiB(agent) * 10) / 10);
      await sleep(SAMPLE_EVERY_MS);
    }
    return {
      workloads,
      captured: captured.length,
      rssSamplesMiB: samples,
      medianRssMiB: median(samples),
      maxRssMiB: Math.max(...samples),
      ...(captured.length < workloads
        ? { error: `only ${captured.length} of ${workloads} workloads were captured within 30 s` }
        : {}),
    };
  });
}
