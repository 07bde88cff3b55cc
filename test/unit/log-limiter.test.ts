// The rate limit for log lines a peer or a client can cause per connection: a burst per kind and
// window, then one summary line with the exact count; keys bounded; nothing lost on close.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createJsonLogger,
  type LogFields,
  LogLimiter,
  type LogLimiterOptions,
  rateLimitedLogger,
} from '../../daemon/telemetry/index.js';

/** A clock and a timer under the test's control. */
function fakeTime() {
  let now = 0;
  let pending: { at: number; fn: () => void } | undefined;
  return {
    now: () => now,
    schedule: (fn: () => void, ms: number) => {
      const entry = { at: now + ms, fn };
      pending = entry;
      return () => {
        if (pending === entry) pending = undefined;
      };
    },
    advance(ms: number) {
      now += ms;
      const due = pending;
      if (due && due.at <= now) {
        pending = undefined;
        due.fn();
      }
    },
    get scheduled() {
      return pending !== undefined;
    },
  };
}

function setup(options: LogLimiterOptions = {}) {
  const time = fakeTime();
  let suppressed = 0;
  const limiter = new LogLimiter({
    burst: 3,
    windowMs: 10_000,
    now: time.now,
    schedule: time.schedule,
    onSuppressed: () => {
      suppressed += 1;
    },
    ...options,
  });
  const lines: LogFields[] = [];
  const logger = createJsonLogger({
    level: 'debug',
    write: (l) => lines.push(JSON.parse(l) as LogFields),
    now: time.now,
  });
  return { time, limiter, lines, logger, suppressed: () => suppressed };
}

test('a burst per key is written, the rest counted, and one summary line ends the window', () => {
  const { time, limiter, lines, logger, suppressed } = setup();
  const warn = (fields: LogFields, msg: string) => logger.warn(fields, msg);
  for (let i = 0; i < 10; i++)
    limiter.submit('refused', warn, { remote: `10.0.0.${i}` }, 'refused');
  limiter.submit('other', warn, { n: 1 }, 'other');
  assert.equal(lines.length, 4, 'three of the first kind, one of the second');
  assert.equal(suppressed(), 7);
  time.advance(9_999);
  assert.equal(lines.length, 4, 'no summary before the window ends');
  time.advance(1);
  assert.equal(lines.length, 5, 'one summary, and only for the kind that had suppressions');
  assert.deepEqual(lines[4], {
    level: 'warn',
    time: new Date(10_000).toISOString(),
    msg: 'refused (7 more like this in the last 10 s)',
    remote: '10.0.0.9',
    suppressed: 7,
  });
});

test('a new window gives every key its burst again; an idle limiter keeps no timer', () => {
  const { time, limiter, lines, logger } = setup();
  const info = (fields: LogFields, msg: string) => logger.info(fields, msg);
  for (let i = 0; i < 5; i++) limiter.submit('k', info, {}, 'm');
  time.advance(10_000);
  assert.equal(lines.length, 4);
  assert.equal(time.scheduled, false, 'the window ended and nothing came since');
  for (let i = 0; i < 3; i++) limiter.submit('k', info, {}, 'm');
  assert.equal(lines.length, 7, 'a fresh burst');
  assert.equal(time.scheduled, true);
  time.advance(10_000);
  assert.equal(lines.length, 7, 'no suppression, no summary');
  assert.equal(lines[3]?.level, 'info', 'the summary keeps the level');
});

test('flush and close write the summaries at once with the time so far; later lines pass', () => {
  const { time, limiter, lines, logger, suppressed } = setup();
  const warn = (fields: LogFields, msg: string) => logger.warn(fields, msg);
  for (let i = 0; i < 8; i++) limiter.submit('k', warn, { i }, 'm');
  time.advance(2_400);
  limiter.close();
  assert.equal(lines.length, 4);
  assert.equal(lines[3]?.msg, 'm (5 more like this in the last 2 s)');
  assert.equal(lines[3]?.suppressed, 5);
  assert.equal(lines[3]?.i, 7);
  assert.equal(time.scheduled, false, 'close cancels the window timer');
  for (let i = 0; i < 5; i++) assert.equal(limiter.submit('k', warn, {}, 'late'), true);
  assert.equal(lines.length, 9, 'a closed limiter lets every line through');
  assert.equal(suppressed(), 5);
});

test('keys are bounded: past maxKeys, new kinds share one overflow key with its own summary', () => {
  const { time, limiter, lines, logger, suppressed } = setup({ burst: 1, maxKeys: 2 });
  const warn = (fields: LogFields, msg: string) => logger.warn(fields, msg);
  for (let k = 0; k < 100; k++) limiter.submit(`k${k}`, warn, { k }, `kind ${k}`);
  // k0, k1 each get their one line; k2..k99 share the overflow key: one line, 97 counted.
  assert.equal(lines.length, 3);
  assert.equal(suppressed(), 97);
  limiter.submit('k0', warn, { k: 0 }, 'kind 0');
  time.advance(10_000);
  const summaries = lines.slice(3);
  assert.deepEqual(
    summaries.map((l) => [l.msg, l.suppressed, l.overflow]),
    [
      ['kind 0 (1 more like this in the last 10 s)', 1, undefined],
      ['97 more lines of many kinds in the last 10 s (the last: kind 99)', 97, true],
    ],
  );
  assert.equal(suppressed(), 98);
});

test('rateLimitedLogger keys by level, message and a few fields; debug passes', () => {
  const { time, limiter, lines, logger } = setup({ burst: 2 });
  const limited = rateLimitedLogger(logger.child({ component: 'dataplane' }), limiter);
  const ref = { namespace: 'shop', name: 'web' };
  for (let i = 0; i < 5; i++) {
    limited.warn({ workload: ref, reason: 'tls', remote: `10.0.0.${i}` }, 'HBONE refused');
    limited.warn({ workload: ref, reason: 'timeout', remote: `10.0.0.${i}` }, 'HBONE refused');
    limited.info({ workload: ref, reason: 'tls' }, 'HBONE refused');
    limited.debug({ i }, 'detail');
  }
  const count = (pred: (l: LogFields) => boolean) => lines.filter(pred).length;
  assert.equal(
    count((l) => l.level === 'warn' && l.reason === 'tls'),
    2,
    'the remote is no key',
  );
  assert.equal(
    count((l) => l.level === 'warn' && l.reason === 'timeout'),
    2,
  );
  assert.equal(
    count((l) => l.level === 'info'),
    2,
    'another level is another kind',
  );
  assert.equal(
    count((l) => l.level === 'debug'),
    5,
  );
  time.advance(10_000);
  const summaries = lines.filter((l) => l.suppressed !== undefined);
  assert.equal(summaries.length, 3);
  for (const s of summaries) {
    assert.equal(s.suppressed, 3);
    assert.equal(s.component, 'dataplane', 'the summary carries the logger fields');
    assert.equal(s.msg, 'HBONE refused (3 more like this in the last 10 s)');
  }
});
