import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { MeshdError } from '../../daemon/errors.js';
import {
  CertificateManager,
  type CertificateManagerOptions,
  type IssuedCertificate,
  type TimerHandle,
  type Timers,
} from '../../daemon/identity/manager.js';

const ID = 'spiffe://mesh.test/ns/default/sa/web';
const HOUR = 3_600_000;
const T0 = Date.UTC(2030, 0, 1);

/** A clock and timers that move only when the test says so. */
class FakeTime implements Timers {
  t = T0;

  now(): number {
    return this.t;
  }
  readonly delays: number[] = [];
  #timers = new Map<TimerHandle, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = {
      unrefed: false,
      unref() {
        this.unrefed = true;
      },
    };
    this.delays.push(ms);
    this.#timers.set(handle, { at: this.t + ms, fn });
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle);
  }

  get pending(): number {
    return this.#timers.size;
  }

  get allUnrefed(): boolean {
    return [...this.#timers.keys()].every((h) => (h as { unrefed: boolean }).unrefed);
  }

  /** Moves the clock to `target`, running due timers in order and letting promises settle. */
  async advanceTo(target: number): Promise<void> {
    for (;;) {
      await settle();
      const next = [...this.#timers].sort((a, b) => a[1].at - b[1].at)[0];
      if (!next || next[1].at > target) break;
      this.#timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = target;
    await settle();
  }

  advance(ms: number): Promise<void> {
    return this.advanceTo(this.t + ms);
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

interface Call {
  identity: string;
  signal: AbortSignal;
  resolve(cert: IssuedCertificate): void;
  reject(err: unknown): void;
}

/** Answers at once with a `ttl`-long certificate, or fails while `failing` is set; `hold` parks calls. */
class FakeIssuer {
  readonly calls: Call[] = [];
  ttl = 24 * HOUR;
  failing: Error | undefined;
  hold = false;
  #serial = 0;

  readonly time: FakeTime;

  constructor(time: FakeTime) {
    this.time = time;
  }

  cert(ttl = this.ttl): IssuedCertificate {
    this.#serial += 1;
    return {
      certChainPem: `-----BEGIN CERTIFICATE-----\n#${this.#serial}\n-----END CERTIFICATE-----\n`,
      keyPem: '-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n',
      notBefore: new Date(this.time.t),
      notAfter: new Date(this.time.t + ttl),
      serial: this.#serial.toString(16).padStart(2, '0'),
      issuer: 'O=meshd,CN=test intermediate',
    };
  }

  issue = (identity: string, signal: AbortSignal): Promise<IssuedCertificate> =>
    new Promise((resolve, reject) => {
      this.calls.push({ identity, signal, resolve, reject });
      if (this.hold) return;
      if (this.failing) reject(this.failing);
      else resolve(this.cert());
    });
}

function setup(overrides: Partial<CertificateManagerOptions> = {}) {
  const time = new FakeTime();
  const issuer = new FakeIssuer(time);
  const registry = new Registry();
  const manager = new CertificateManager({
    issuer,
    clock: time,
    timers: time,
    random: () => 0.5,
    metrics: registry,
    ...overrides,
  });
  return { time, issuer, registry, manager };
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const got = await registry.getSingleMetric(name)?.get();
  const match = got?.values.find((v) =>
    Object.entries(labels).every(([k, val]) => v.labels[k] === val),
  );
  return match?.value;
}

function isCertError(identity: string, cause?: unknown) {
  return (err: unknown) => {
    assert.ok(err instanceof MeshdError, `not a MeshdError: ${String(err)}`);
    assert.equal(err.code, 'MESHD_E_CERT_ISSUE');
    assert.ok(err.message.includes(identity), err.message);
    if (cause !== undefined) assert.equal(err.cause, cause);
    return true;
  };
}

test('a cached certificate is returned as the same object without a second issue', async () => {
  const { issuer, manager } = setup();
  const first = await manager.get(ID);
  const second = await manager.get(ID);
  assert.equal(second, first);
  assert.equal(issuer.calls.length, 1);
  assert.equal(issuer.calls[0]?.identity, ID);
  manager.close();
});

test('20 concurrent get() calls share one issue', async () => {
  const { issuer, manager } = setup();
  issuer.hold = true;
  const waiting = Array.from({ length: 20 }, () => manager.get(ID));
  await settle();
  assert.equal(issuer.calls.length, 1);
  assert.equal(manager.list()[0]?.state, 'issuing');
  const cert = issuer.cert();
  issuer.calls[0]?.resolve(cert);
  const got = await Promise.all(waiting);
  assert.ok(got.every((c) => c === cert));
  assert.equal(issuer.calls.length, 1);
  manager.close();
});

test('renewal starts at half-life within the jitter bounds and onRotate sees the new cert', async () => {
  // random() = 0 pulls renewal 10 % of the lifetime early, ~1 pushes it 10 % late.
  for (const [random, fraction] of [
    [0, 0.4],
    [0.5, 0.5],
    [0.999_999, 0.6],
  ] as const) {
    const { time, issuer, manager } = setup({ random: () => random });
    const rotated: [string, IssuedCertificate][] = [];
    manager.onRotate((identity, cert) => rotated.push([identity, cert]));
    const first = await manager.get(ID);
    const renewAt = manager.list()[0]?.nextAttemptAt?.getTime() ?? 0;
    const expected = T0 + fraction * issuer.ttl;
    assert.ok(Math.abs(renewAt - expected) < 1000, `random=${random}: ${renewAt - T0}`);

    await time.advanceTo(renewAt - 1000);
    assert.equal(issuer.calls.length, 1, 'renewed too early');
    await time.advanceTo(renewAt);
    assert.equal(issuer.calls.length, 2, 'not renewed at the renewal time');

    const second = await manager.get(ID);
    assert.notEqual(second, first);
    assert.deepEqual(rotated, [
      [ID, first],
      [ID, second],
    ]);
    manager.close();
  }
});

test('a listener that throws does not stop rotation or the other listeners', async () => {
  const { manager } = setup();
  const seen: string[] = [];
  manager.onRotate(() => {
    throw new Error('boom');
  });
  const off = manager.onRotate((_, cert) => seen.push(cert.serial));
  const cert = await manager.get(ID);
  assert.deepEqual(seen, [cert.serial]);
  off();
  manager.close();
});

test('failed renewals back off 1x, 2x, 4x … up to the cap while the old cert keeps serving', async () => {
  const { time, issuer, manager, registry } = setup({
    random: () => 0, // no backoff jitter; renewal at 40 % of the lifetime
    backoff: { initialMs: 1000, maxMs: 20_000 },
  });
  const old = await manager.get(ID);
  const failure = new Error('connect ECONNREFUSED');
  issuer.failing = failure;
  await time.advanceTo(T0 + 0.4 * issuer.ttl);
  assert.equal(issuer.calls.length, 2);

  const gaps: number[] = [];
  for (let i = 0; i < 7; i++) {
    const due = manager.list()[0]?.nextAttemptAt?.getTime() ?? Number.NaN;
    gaps.push(due - time.t);
    assert.equal(await manager.get(ID), old, 'old certificate not served during failures');
    await time.advanceTo(due);
  }
  assert.deepEqual(gaps, [1000, 2000, 4000, 8000, 16_000, 20_000, 20_000]);
  assert.equal(issuer.calls.length, 9, 'one attempt per backoff step, none piled up');

  const status = manager.list()[0];
  assert.equal(status?.state, 'failing');
  assert.equal(status?.failures, 8);
  assert.equal(status?.serial, old.serial);
  assert.match(status?.lastError ?? '', /ECONNREFUSED/);
  assert.equal(await metric(registry, 'meshd_certificate_renewal_failures_total'), 8);

  issuer.failing = undefined;
  await time.advance(20_000);
  const fresh = await manager.get(ID);
  assert.notEqual(fresh, old);
  assert.equal(manager.list()[0]?.state, 'valid');
  assert.equal(manager.list()[0]?.failures, 0);
  manager.close();
});

test('backoff jitter stays within 10 % above the nominal delay', async () => {
  const { time, issuer, manager } = setup({ random: () => 0.999_999 });
  issuer.failing = new Error('down');
  await assert.rejects(manager.get(ID));
  const due = manager.list()[0]?.nextAttemptAt?.getTime() ?? 0;
  assert.ok(due - time.t >= 1000 && due - time.t <= 1100, `delay ${due - time.t}`);
  manager.close();
});

test('the old cert serves until notAfter; then get() fails with the coded error, and a later retry recovers', async () => {
  const { time, issuer, manager } = setup({ random: () => 0 });
  issuer.ttl = 100_000;
  const old = await manager.get(ID);
  const failure = new Error('CA unavailable');
  issuer.failing = failure;

  await time.advanceTo(old.notAfter.getTime() - 1);
  assert.equal(await manager.get(ID), old, 'old certificate dropped before notAfter');
  await time.advanceTo(old.notAfter.getTime());
  await assert.rejects(manager.get(ID), isCertError(ID, failure));
  const status = manager.list()[0];
  assert.equal(status?.state, 'failing');
  assert.equal(status?.serial, undefined);

  const calls = issuer.calls.length;
  await assert.rejects(manager.get(ID), isCertError(ID));
  assert.equal(issuer.calls.length, calls, 'get() during backoff must not add load on the CA');

  issuer.failing = undefined;
  await time.advanceTo(status?.nextAttemptAt?.getTime() ?? 0);
  const fresh = await manager.get(ID);
  assert.notEqual(fresh, old);
  assert.ok(fresh.notAfter.getTime() > time.t);
  manager.close();
});

test('a first issue that fails rejects every waiter with the cause, then retries in the background', async () => {
  const { time, issuer, manager, registry } = setup({ random: () => 0 });
  issuer.hold = true;
  const waiting = [manager.get(ID), manager.get(ID)];
  await settle();
  const failure = new Error('permission denied: workload not on this node');
  issuer.calls[0]?.reject(failure);
  await Promise.all(waiting.map((p) => assert.rejects(p, isCertError(ID, failure))));
  assert.equal(await metric(registry, 'meshd_certificate_issue_total', { result: 'failure' }), 1);
  assert.equal(await metric(registry, 'meshd_certificate_renewal_failures_total'), 0);

  issuer.hold = false;
  await time.advance(1000);
  assert.equal(issuer.calls.length, 2);
  assert.equal(manager.list()[0]?.state, 'valid');
  assert.equal((await manager.get(ID)).serial, '01');
  manager.close();
});

test('an unusable certificate from the issuer counts as a failure', async () => {
  const { issuer, manager } = setup();
  issuer.ttl = -1;
  await assert.rejects(manager.get(ID), (err: unknown) => {
    assert.ok(isCertError(ID)(err));
    assert.match(String((err as Error).cause), /invalid validity period/);
    return true;
  });
  manager.close();
});

test('an issue that hangs is aborted at the deadline and retried', async () => {
  const { time, issuer, manager } = setup({ issueTimeoutMs: 5000 });
  issuer.hold = true;
  const outcome = assert.rejects(manager.get(ID), (err: unknown) => {
    assert.ok(isCertError(ID)(err));
    assert.match(String((err as Error).cause), /did not answer within 5000 ms/);
    return true;
  });
  await settle();
  await time.advance(4999);
  assert.equal(issuer.calls[0]?.signal.aborted, false);
  await time.advance(1);
  await outcome;
  assert.equal(issuer.calls[0]?.signal.aborted, true);
  manager.close();
});

test('a renewal far away is reached in timer hops that Node can represent', async () => {
  const { time, issuer, manager } = setup();
  issuer.ttl = 100 * 24 * HOUR; // renewal after 50 days, past setTimeout's 24.8-day limit
  await manager.get(ID);
  assert.ok(
    time.delays.every((ms) => ms <= 2 ** 31 - 1),
    String(time.delays),
  );
  await time.advanceTo(T0 + 50 * 24 * HOUR - 1);
  assert.equal(issuer.calls.length, 1);
  await time.advanceTo(T0 + 50 * 24 * HOUR);
  assert.equal(issuer.calls.length, 2);
  manager.close();
});

test('forget() stops renewals, aborts an issue in flight and removes the metric series', async () => {
  const { time, issuer, manager, registry } = setup();
  await manager.get(ID);
  assert.equal(time.pending, 1, 'one timer per identity');
  assert.ok(time.allUnrefed);
  assert.equal(manager.forget(ID), true);
  assert.equal(manager.forget(ID), false);
  assert.equal(time.pending, 0);
  assert.deepEqual(manager.list(), []);
  await time.advance(48 * HOUR);
  assert.equal(issuer.calls.length, 1);
  assert.equal(
    await metric(registry, 'meshd_certificate_expiry_timestamp_seconds', { identity: ID }),
    undefined,
  );

  issuer.hold = true;
  const waiting = manager.get(ID);
  await settle();
  manager.forget(ID);
  await assert.rejects(waiting, isCertError(ID));
  assert.equal(issuer.calls.at(-1)?.signal.aborted, true);
  issuer.calls.at(-1)?.resolve(issuer.cert()); // a late answer changes nothing
  await settle();
  assert.deepEqual(manager.list(), []);
  assert.equal(time.pending, 0);
  manager.close();
});

test('close() cancels every timer, aborts issues in flight and is idempotent', async () => {
  const { time, issuer, manager } = setup();
  const other = 'spiffe://mesh.test/ns/default/sa/db';
  await manager.get(ID);
  issuer.hold = true;
  const waiting = assert.rejects(manager.get(other), isCertError(other));
  await settle();
  assert.equal(time.pending, 2, 'a renewal timer and an issue deadline');
  assert.ok(time.allUnrefed);

  manager.close();
  assert.equal(time.pending, 0);
  assert.equal(issuer.calls[1]?.signal.aborted, true);
  manager.close();
  await waiting;
  await assert.rejects(manager.get(ID), isCertError(ID));
  assert.deepEqual(manager.list(), []);
});

test('list() is sorted by identity and reports state and validity', async () => {
  const { issuer, manager } = setup();
  const ids = ['spiffe://mesh.test/ns/b/sa/x', 'spiffe://mesh.test/ns/a/sa/y'];
  for (const id of ids) await manager.get(id);
  issuer.hold = true;
  void manager.get('spiffe://mesh.test/ns/c/sa/z').catch(() => {});
  await settle();
  const rows = manager.list();
  assert.deepEqual(
    rows.map((r) => [r.identity, r.state, r.serial]),
    [
      ['spiffe://mesh.test/ns/a/sa/y', 'valid', '02'],
      ['spiffe://mesh.test/ns/b/sa/x', 'valid', '01'],
      ['spiffe://mesh.test/ns/c/sa/z', 'issuing', undefined],
    ],
  );
  assert.equal(rows[0]?.issuer, 'O=meshd,CN=test intermediate');
  assert.equal(rows[0]?.notAfter?.getTime(), T0 + issuer.ttl);
  manager.close();
});

test('metrics: expiry gauge per identity and issue results', async () => {
  const { time, issuer, manager, registry } = setup({ random: () => 0 });
  const issues = (result: string) => metric(registry, 'meshd_certificate_issue_total', { result });
  assert.equal(await issues('success'), 0);
  assert.equal(await issues('failure'), 0);

  const cert = await manager.get(ID);
  assert.equal(
    await metric(registry, 'meshd_certificate_expiry_timestamp_seconds', { identity: ID }),
    cert.notAfter.getTime() / 1000,
  );
  issuer.failing = new Error('down');
  await time.advanceTo(T0 + 0.4 * issuer.ttl);
  issuer.failing = undefined;
  await time.advance(1000);
  const renewed = await manager.get(ID);
  assert.notEqual(renewed, cert);
  assert.equal(await issues('success'), 2);
  assert.equal(await issues('failure'), 1);
  assert.equal(await metric(registry, 'meshd_certificate_renewal_failures_total'), 1);
  assert.equal(
    await metric(registry, 'meshd_certificate_expiry_timestamp_seconds', { identity: ID }),
    renewed.notAfter.getTime() / 1000,
  );
  const text = await registry.getSingleMetricAsString('meshd_certificate_expiry_timestamp_seconds');
  assert.match(text, new RegExp(`\\{identity="${ID}"\\} ${renewed.notAfter.getTime() / 1000}`));
  manager.close();
});

test('bad options are refused with MESHD_E_CONFIG', () => {
  const { issuer } = setup();
  for (const bad of [
    { renewAtFraction: 1 },
    { jitterFraction: 0.6 },
    { backoff: { initialMs: 0, maxMs: 10 } },
    { backoff: { initialMs: 100, maxMs: 10 } },
    { issueTimeoutMs: 0 },
  ]) {
    assert.throws(
      () => new CertificateManager({ issuer, ...bad }),
      (err: unknown) => err instanceof MeshdError && err.code === 'MESHD_E_CONFIG',
      JSON.stringify(bad),
    );
  }
});

test('with real timers a process holding certificates exits promptly (timers are unref()d)', () => {
  const url = new URL('../../daemon/identity/manager.js', import.meta.url).href;
  const script = `
    const { CertificateManager } = await import(${JSON.stringify(url)});
    const issuer = { issue: async () => ({
      certChainPem: 'c', keyPem: 'k', serial: '01', issuer: 'x',
      notBefore: new Date(), notAfter: new Date(Date.now() + 3_600_000) }) };
    const manager = new CertificateManager({ issuer });
    await manager.get('spiffe://mesh.test/ns/default/sa/web');
    console.log(manager.list()[0].state);
  `;
  const started = Date.now();
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 4000,
  });
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), 'valid');
  assert.ok(Date.now() - started < 3000);
});

test('adopt() serves a certificate obtained elsewhere and renews it at half-life', async () => {
  const { time, issuer, manager } = setup();
  const saved = issuer.cert(10 * HOUR);
  manager.adopt(ID, saved);
  assert.equal(await manager.get(ID), saved);
  assert.equal(issuer.calls.length, 0, 'no issue at adoption');
  await time.advance(4.9 * HOUR);
  assert.equal(issuer.calls.length, 0, 'not renewed before half-life');
  await time.advance(0.2 * HOUR);
  assert.equal(issuer.calls.length, 1, 'renewed at half-life');
  assert.notEqual(await manager.get(ID), saved);
  const expired = { ...issuer.cert(HOUR), notAfter: new Date(time.t - 1) };
  assert.throws(() => manager.adopt('spiffe://mesh.test/ns/x/sa/y', expired));
  manager.close();
});
