import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryTrimmer } from '../../daemon/agent/memory-trimmer.js';
import { trimMallocArenas } from '../../daemon/net/index.js';
import type { Logger } from '../../daemon/telemetry/index.js';

/** A trimmer on a fake CPU clock: 10 s intervals, quiet below 200 ms, busy after 2 s. */
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

test('trims once the agent is quiet after work, and not again until it worked 2 s more', () => {
  const { trimmer, after } = fakeTrimmer();
  try {
    assert.equal(after(3_000), 0, 'busy interval (30 % CPU): no trim under load');
    assert.equal(after(50), 1, 'quiet interval after work: trims');
    assert.equal(after(50), 1, 'still quiet, no work since: no second trim');
    for (let i = 0; i < 18; i++) after(100); // light traffic, 1 % CPU: quiet, 1.8 s of work
    assert.equal(trimmer.trims, 1, 'a lightly loaded agent is not collected every interval');
    assert.equal(after(150), 2, '2.05 s of work since the trim, quiet: trims again');
  } finally {
    trimmer.close();
  }
});

test('start-up counts as work however little it cost: the first quiet interval trims', () => {
  const { trimmer, after } = fakeTrimmer();
  try {
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
