import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryTrimmer } from '../../daemon/agent/memory-trimmer.js';
import { trimMallocArenas } from '../../daemon/net/index.js';
import type { Logger } from '../../daemon/telemetry/index.js';

/** A trimmer on a fake CPU clock: 10 s intervals, quiet below 200 ms, busy after 2 s. */
function fakeTrimmer(trim: () => boolean = () => true) {
  let cpuMicros = 0;
  const trimmer = new MemoryTrimmer({
    intervalMs: 10_000,
    quietWindowMs: 10_000,
    trim,
    cpuMicros: () => cpuMicros,
  });
  trimmer.start();
  const after = (cpuMs: number) => {
    cpuMicros += cpuMs * 1000;
    trimmer.tick();
    return trimmer.trims;
  };
  return { trimmer, after };
}

/** The agent's defaults (2 s ticks, a 10 s window) on a fake clock; `burn` is CPU in the trim. */
function slidingTrimmer(burnMs = 0) {
  let cpuMicros = 0;
  const trimmer = new MemoryTrimmer({
    trim: () => {
      cpuMicros += burnMs * 1000;
      return true;
    },
    cpuMicros: () => cpuMicros,
  });
  trimmer.start();
  /** One 2 s tick with this much CPU in it; the trims so far. */
  const tick = (cpuMs: number) => {
    cpuMicros += cpuMs * 1000;
    trimmer.tick();
    return trimmer.trims;
  };
  /** Ticks until the first trim after this call; how many it took (up to `max`). */
  const ticksToTrim = (cpuMs: number, max = 20) => {
    const before = trimmer.trims;
    for (let i = 1; i <= max; i++) if (tick(cpuMs) > before) return i;
    return Number.POSITIVE_INFINITY;
  };
  return { trimmer, tick, ticksToTrim };
}

test('trims once the agent is quiet after work, once more a window later, then not until it worked 2 s more', () => {
  const { trimmer, after } = fakeTrimmer();
  try {
    assert.equal(after(3_000), 0, 'busy interval (30 % CPU): no trim under load');
    assert.equal(after(50), 1, 'quiet interval after work: trims');
    assert.equal(after(50), 2, 'quiet a window later: the one follow-up trim');
    assert.equal(after(50), 2, 'still quiet, no work since: no third trim');
    for (let i = 0; i < 18; i++) after(100); // light traffic, 1 % CPU: quiet, 1.8 s of work
    assert.equal(trimmer.trims, 2, 'a lightly loaded agent is not collected every interval');
    assert.equal(after(150), 3, '2.0 s of work since the last trim, quiet: trims again');
  } finally {
    trimmer.close();
  }
});

test('2 s ticks: the trim comes one 10 s window after a burst ends, the follow-up one more later', () => {
  const { trimmer, tick, ticksToTrim } = slidingTrimmer();
  try {
    assert.equal(ticksToTrim(0), 5, 'start-up: the first whole quiet window');
    for (let i = 0; i < 10; i++) assert.equal(tick(1_500), 1, 'under load (75 % CPU): no trim');
    assert.equal(ticksToTrim(10), 5, 'quiet for a whole window after the burst: trims');
    assert.equal(ticksToTrim(10), 5, 'the follow-up, a window after that trim');
    assert.equal(ticksToTrim(10, 50), Number.POSITIVE_INFINITY, 'then none without work');
  } finally {
    trimmer.close();
  }
});

test('2 s ticks: gaps in bursty traffic shorter than the window are not quiet', () => {
  const { trimmer, tick } = slidingTrimmer();
  try {
    for (let i = 0; i < 5; i++) tick(0); // start-up's trim
    assert.equal(trimmer.trims, 1);
    for (let round = 0; round < 10; round++) {
      tick(1_000); // one busy tick, then 8 s without CPU
      for (let i = 0; i < 4; i++) assert.equal(tick(0), 1, `round ${round}: in a gap, no trim`);
    }
  } finally {
    trimmer.close();
  }
});

test("the trim's own CPU neither makes the next window busy nor counts as work", () => {
  const { trimmer, tick, ticksToTrim } = slidingTrimmer(1_000); // a 1 s collection
  try {
    assert.equal(ticksToTrim(0), 5);
    assert.equal(ticksToTrim(0), 5, 'the follow-up is on time although its window held 1 s');
    assert.equal(ticksToTrim(0, 50), Number.POSITIVE_INFINITY, 'two 1 s trims are not 2 s of work');
    for (let i = 0; i < 2; i++) tick(1_000);
    assert.equal(ticksToTrim(0), 5, 'real work of 2 s: trims again once quiet');
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
