import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryTrimmer } from '../../daemon/agent/memory-trimmer.js';
import { trimMallocArenas } from '../../daemon/net/index.js';
import type { Logger } from '../../daemon/telemetry/index.js';

/** A trimmer on a fake CPU clock: 10 s intervals, quiet below 200 ms, busy after 250 ms. */
function fakeTrimmer(trim: () => boolean = () => true) {
  let cpuMicros = 0;
  const trimmer = new MemoryTrimmer({ intervalMs: 10_000, trim, cpuMicros: () => cpuMicros });
  trimmer.start();
  const after = (cpuMs: number) => {
    cpuMicros += cpuMs * 1000;
    trimmer.tick();
    return trimmer.trims;
  };
  return { trimmer, after };
}

test('trims once the agent is quiet after work, and not again until it works again', () => {
  const { trimmer, after } = fakeTrimmer();
  try {
    assert.equal(after(3_000), 0, 'busy interval (30 % CPU): no trim under load');
    assert.equal(after(50), 1, 'quiet interval after work: trims');
    assert.equal(after(50), 1, 'still quiet, no work since: no second trim');
    assert.equal(after(100), 1, 'quiet, 200 ms of work since the trim: below the 250 ms bar');
    assert.equal(after(100), 2, '300 ms since the trim, quiet: trims again');
  } finally {
    trimmer.close();
  }
});

test('start-up counts as work: the first quiet interval trims', () => {
  const { trimmer, after } = fakeTrimmer();
  try {
    // The fake clock starts at 0 and start-up is charged from process start (the real clock
    // already holds the start-up CPU); 300 ms of start-up then a quiet interval.
    assert.equal(after(300), 0, 'the interval that holds start-up is not quiet (300 > 200 ms)');
    assert.equal(after(10), 1);
  } finally {
    trimmer.close();
  }
});

test('a failing trim is logged once and the trimmer stops', () => {
  const warnings: string[] = [];
  let calls = 0;
  const trimmer = new MemoryTrimmer({
    intervalMs: 10_000,
    busyCpuMs: 0,
    cpuMicros: () => 0,
    trim: () => {
      calls += 1;
      throw new Error('boom');
    },
    logger: { warn: (_f: object, msg: string) => warnings.push(msg) } as unknown as Logger,
  });
  trimmer.start();
  trimmer.tick();
  trimmer.tick();
  trimmer.close();
  assert.equal(calls, 1);
  assert.equal(trimmer.trims, 0);
  assert.deepEqual(warnings, ['malloc_trim failed; not retried']);
});

test('the addon calls glibc malloc_trim and says whether memory went back', () => {
  const released = trimMallocArenas();
  assert.equal(typeof released, 'boolean');
});
