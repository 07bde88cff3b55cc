/**
 * Preloaded into the agents by `npm run bench:profile -- --alloc-prof` (node --import): samples
 * every heap allocation from start-up on, keeping objects the GC has already collected, and
 * writes the profile to $MESHD_ALLOC_PROFILE_DIR/alloc-PID.heapprofile on exit. This is the
 * young-generation churn that drives scavenges, which --heap-prof (survivors only) hides.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const dir = process.env.MESHD_ALLOC_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.enable');
  session.post('HeapProfiler.startSampling', {
    samplingInterval: 16_384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  process.on('exit', () => {
    // An in-process session answers synchronously, so this completes inside 'exit'.
    session.post('HeapProfiler.stopSampling', (err, result) => {
      if (!err)
        writeFileSync(`${dir}/alloc-${process.pid}.heapprofile`, JSON.stringify(result.profile));
    });
  });
}
