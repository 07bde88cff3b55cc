/**
 * The agent's certificate manager (DESIGN §5): one X.509-SVID per local workload identity,
 * issued on first use, renewed at half-life with jitter, retried with capped exponential backoff,
 * and served until it expires even while renewals fail. Keys, CSRs and the CA call are injected
 * as a CertificateIssuer, so this module only decides *when* to issue and what to serve.
 *
 * Per identity there is at most one timer (the next renewal or retry, or the deadline of the
 * issue in flight) and at most one issue in flight; every timer is unref()'d.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { describeError, MeshdError } from '../errors.js';

export interface IssuedCertificate {
  /** PEM: leaf first, then intermediates (what a TLS context's `cert` takes). */
  certChainPem: string;
  /** PKCS#8 PEM private key that stays in this process. */
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
  serial: string; // hex
  issuer: string; // issuer subject, for display
}

export interface CertificateIssuer {
  /** Makes a fresh key + CSR for `identity` (a SPIFFE ID string) and has the CA sign it. */
  issue(identity: string, signal: AbortSignal): Promise<IssuedCertificate>;
}

export interface Clock {
  /** Milliseconds since the Unix epoch, like Date.now(). */
  now(): number;
}

export interface TimerHandle {
  unref?(): unknown;
}

export interface Timers {
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

type LogFn = (obj: Record<string, unknown>, msg: string) => void;

/** The slice of a pino logger the manager uses. */
export interface ManagerLogger {
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export interface CertificateManagerOptions {
  issuer: CertificateIssuer;
  clock?: Clock;
  timers?: Timers;
  /** Uniform in [0, 1); drives renewal and backoff jitter. */
  random?: () => number;
  /** Renew at this fraction of the certificate's lifetime (default 0.5). */
  renewAtFraction?: number;
  /** Renewal moves by up to ± this fraction of the lifetime (default 0.1). */
  jitterFraction?: number;
  /** Delay after the n-th failure in a row: initialMs·2^(n-1), capped at maxMs, plus ≤10 %. */
  backoff?: BackoffOptions;
  /** An issue that takes longer is aborted and counts as a failure (default 30 s). */
  issueTimeoutMs?: number;
  /** Where the `meshd_certificate_*` metrics are registered (none if absent). */
  metrics?: Registry;
  logger?: ManagerLogger;
}

/**
 * issuing: no valid certificate yet, the first issue runs; valid: cached, renewal scheduled;
 * renewing: cached and a renewal runs; failing: the last attempt failed, a retry is scheduled
 * or running (a certificate may still be served; see notAfter).
 */
export type CertificateState = 'issuing' | 'valid' | 'renewing' | 'failing';

export interface CertificateStatus {
  identity: string;
  state: CertificateState;
  /** The certificate being served; absent while none is valid. */
  serial?: string;
  notBefore?: Date;
  notAfter?: Date;
  issuer?: string;
  /** When the next renewal or retry starts; absent while one runs. */
  nextAttemptAt?: Date;
  /** Failed attempts since the last success. */
  failures: number;
  lastError?: string;
}

export type RotateListener = (identity: string, cert: IssuedCertificate) => void;

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 60_000 };
/** Node fires longer timeouts at once (TimeoutOverflowWarning); a 30-day lifetime exceeds it. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Added to backoff delays so agents that failed together do not retry in lock-step. */
const BACKOFF_JITTER = 0.1;
const HINT =
  'check that the agent reaches the meshd server and that the workload runs on this node';

const realTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

const silent: ManagerLogger = { info() {}, warn() {}, error() {} };

interface Attempt {
  controller: AbortController;
  /** Aborts the issue when the issuer takes too long. */
  deadline: TimerHandle;
  promise: Promise<IssuedCertificate>;
}

interface Entry {
  readonly identity: string;
  cert: IssuedCertificate | undefined;
  attempt: Attempt | undefined;
  timer: TimerHandle | undefined;
  /** When the timer's work is due; delays beyond MAX_TIMER_MS take several timer hops. */
  dueAt: number | undefined;
  failures: number;
  lastError: unknown;
  /** Forgotten or closed: whatever its attempt still returns is dropped. */
  gone: boolean;
}

class ManagerMetrics {
  readonly expiry: Gauge<'identity'>;
  readonly issues: Counter<'result'>;
  readonly renewalFailures: Counter;

  constructor(registry: Registry | undefined) {
    const registers = registry ? [registry] : [];
    this.expiry = new Gauge({
      name: 'meshd_certificate_expiry_timestamp_seconds',
      help: 'notAfter of the certificate cached for each local workload identity (Unix seconds)',
      labelNames: ['identity'],
      registers,
    });
    this.issues = new Counter({
      name: 'meshd_certificate_issue_total',
      help: 'Certificate issue attempts (first issue and renewals) by result',
      labelNames: ['result'],
      registers,
    });
    this.renewalFailures = new Counter({
      name: 'meshd_certificate_renewal_failures_total',
      help: 'Failed attempts while a still-valid certificate was being served',
      registers,
    });
    // Both series exist from the start so rate() and alerts see a zero, not an absence.
    this.issues.inc({ result: 'success' }, 0);
    this.issues.inc({ result: 'failure' }, 0);
  }
}

export class CertificateManager {
  readonly #issuer: CertificateIssuer;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #renewAt: number;
  readonly #jitter: number;
  readonly #backoff: BackoffOptions;
  readonly #issueTimeoutMs: number;
  readonly #metrics: ManagerMetrics;
  readonly #log: ManagerLogger;
  readonly #entries = new Map<string, Entry>();
  readonly #listeners = new Set<RotateListener>();
  #closed = false;

  constructor(options: CertificateManagerOptions) {
    this.#issuer = options.issuer;
    this.#clock = options.clock ?? Date;
    this.#timers = options.timers ?? realTimers;
    this.#random = options.random ?? Math.random;
    this.#renewAt = options.renewAtFraction ?? 0.5;
    this.#jitter = options.jitterFraction ?? 0.1;
    this.#backoff = { ...(options.backoff ?? DEFAULT_BACKOFF) };
    this.#issueTimeoutMs = options.issueTimeoutMs ?? 30_000;
    checkOptions(this.#renewAt, this.#jitter, this.#backoff, this.#issueTimeoutMs);
    this.#metrics = new ManagerMetrics(options.metrics);
    this.#log = options.logger ?? silent;
  }

  /**
   * The valid cached certificate for `identity`, else the result of issuing one (callers for
   * one identity share a single issue). While retries back off, fails fast with the last error
   * instead of adding load on the CA. Rejects with MESHD_E_CERT_ISSUE.
   */
  async get(identity: string): Promise<IssuedCertificate> {
    if (this.#closed) {
      throw new MeshdError(
        'MESHD_E_CERT_ISSUE',
        `no certificate for ${identity}: the certificate manager is closed`,
      );
    }
    const entry = this.#entryFor(identity);
    const now = this.#clock.now();
    const cached = this.#current(entry, now);
    if (cached) return cached;
    const running = entry.attempt?.promise ?? this.#startUnlessBackingOff(entry, now);
    try {
      return await running;
    } catch (err) {
      const fallback = entry.gone ? undefined : this.#current(entry, this.#clock.now());
      if (fallback) return fallback;
      throw err;
    }
  }

  /**
   * Serves a certificate obtained elsewhere (the node certificate saved on disk) and renews it
   * on the usual schedule, instead of issuing a fresh one at start-up.
   */
  adopt(identity: string, cert: IssuedCertificate): void {
    if (this.#closed)
      throw new MeshdError('MESHD_E_CERT_ISSUE', `cannot adopt ${identity}: closed`);
    checkUsable(cert, this.#clock.now());
    this.#succeeded(this.#entryFor(identity), cert);
  }

  /** Stops renewing `identity` and drops its certificate and metric series (workload gone). */
  forget(identity: string): boolean {
    const entry = this.#entries.get(identity);
    if (!entry) return false;
    this.#entries.delete(identity);
    this.#retire(entry, 'the identity was forgotten');
    this.#metrics.expiry.remove({ identity });
    this.#log.info({ identity }, 'certificate forgotten');
    return true;
  }

  /** Every known identity, sorted, for `meshctl certs` and /config_dump. */
  list(): CertificateStatus[] {
    const now = this.#clock.now();
    return [...this.#entries.values()]
      .sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0))
      .map((entry) => this.#status(entry, now));
  }

  /**
   * Called with every newly installed certificate (first issue and each renewal), so TLS
   * contexts can be rebuilt. A listener that throws is logged and does not stop the others.
   * Returns a function that removes the listener.
   */
  onRotate(listener: RotateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Cancels every timer and aborts issues in flight; later get() calls reject. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      this.#retire(entry, 'the certificate manager was closed');
    }
    this.#entries.clear();
    this.#listeners.clear();
  }

  #entryFor(identity: string): Entry {
    let entry = this.#entries.get(identity);
    if (!entry) {
      entry = {
        identity,
        cert: undefined,
        attempt: undefined,
        timer: undefined,
        dueAt: undefined,
        failures: 0,
        lastError: undefined,
        gone: false,
      };
      this.#entries.set(identity, entry);
    }
    return entry;
  }

  /** The certificate to serve; one past notAfter is dropped here, whatever noticed it. */
  #current(entry: Entry, now: number): IssuedCertificate | undefined {
    const cert = entry.cert;
    if (cert && now >= cert.notAfter.getTime()) {
      entry.cert = undefined;
      this.#log.error(
        { identity: entry.identity, serial: cert.serial, notAfter: cert.notAfter.toISOString() },
        'certificate expired before it could be renewed',
      );
      return undefined;
    }
    return cert;
  }

  #startUnlessBackingOff(entry: Entry, now: number): Promise<IssuedCertificate> {
    if (entry.failures > 0 && entry.dueAt !== undefined && entry.dueAt > now) {
      const seconds = ((entry.dueAt - now) / 1000).toFixed(1);
      throw new MeshdError(
        'MESHD_E_CERT_ISSUE',
        `no certificate for ${entry.identity}: the last ${entry.failures} attempt(s) failed; ` +
          `next attempt in ${seconds}s`,
        { cause: entry.lastError, hint: HINT },
      );
    }
    return this.#start(entry);
  }

  #start(entry: Entry): Promise<IssuedCertificate> {
    this.#cancelTimer(entry);
    const controller = new AbortController();
    const ms = this.#issueTimeoutMs;
    const deadline = this.#arm(
      () => controller.abort(new Error(`the issuer did not answer within ${ms} ms`)),
      ms,
    );
    const promise = this.#attempt(entry, controller.signal).finally(() => {
      this.#timers.clearTimeout(deadline);
      if (entry.attempt?.controller === controller) entry.attempt = undefined;
    });
    // Renewals have no waiter; their failures are counted and logged in #failed.
    promise.catch(() => {});
    entry.attempt = { controller, deadline, promise };
    return promise;
  }

  async #attempt(entry: Entry, signal: AbortSignal): Promise<IssuedCertificate> {
    let cert: IssuedCertificate;
    try {
      cert = await untilAborted(this.#issuer.issue(entry.identity, signal), signal);
      checkUsable(cert, this.#clock.now());
    } catch (err) {
      if (entry.gone) throw signal.reason;
      throw this.#failed(entry, err);
    }
    if (entry.gone) throw signal.reason;
    this.#succeeded(entry, cert);
    return cert;
  }

  #succeeded(entry: Entry, cert: IssuedCertificate): void {
    const { identity } = entry;
    const previous = entry.cert;
    entry.cert = cert;
    entry.failures = 0;
    entry.lastError = undefined;
    const renewAt = this.#renewalTime(cert, this.#clock.now());
    this.#schedule(entry, renewAt);
    this.#metrics.expiry.set({ identity }, cert.notAfter.getTime() / 1000);
    this.#metrics.issues.inc({ result: 'success' });
    this.#log.info(
      {
        identity,
        serial: cert.serial,
        notAfter: cert.notAfter.toISOString(),
        renewAt: new Date(renewAt).toISOString(),
        replaces: previous?.serial,
      },
      previous ? 'certificate renewed' : 'certificate issued',
    );
    for (const listener of this.#listeners) {
      try {
        listener(identity, cert);
      } catch (err) {
        this.#log.error(
          { identity, err: describeError(err) },
          'certificate rotation listener failed',
        );
      }
    }
  }

  /** Counts and logs the failure, schedules the retry, and returns the error for waiters. */
  #failed(entry: Entry, cause: unknown): MeshdError {
    const { identity } = entry;
    entry.failures += 1;
    entry.lastError = cause;
    const now = this.#clock.now();
    const serving = this.#current(entry, now);
    const delay = this.#backoffDelay(entry.failures);
    this.#schedule(entry, now + delay);
    this.#metrics.issues.inc({ result: 'failure' });
    if (serving) this.#metrics.renewalFailures.inc();
    const fields = {
      identity,
      failures: entry.failures,
      retryInMs: delay,
      err: describeError(cause),
    };
    if (serving) {
      this.#log.warn(
        { ...fields, serial: serving.serial, notAfter: serving.notAfter.toISOString() },
        'certificate renewal failed; still serving the current certificate',
      );
    } else {
      this.#log.error(fields, 'certificate issue failed; no valid certificate to serve');
    }
    return new MeshdError(
      'MESHD_E_CERT_ISSUE',
      `no certificate for ${identity}: issuing failed (${entry.failures} in a row; ` +
        `next attempt in ${(delay / 1000).toFixed(1)}s)`,
      { cause, hint: HINT },
    );
  }

  #renewalTime(cert: IssuedCertificate, now: number): number {
    const start = cert.notBefore.getTime();
    const end = cert.notAfter.getTime();
    const lifetime = end - start;
    const jitter = (this.#random() * 2 - 1) * this.#jitter * lifetime;
    const target = Math.round(start + this.#renewAt * lifetime + jitter);
    // A CA with a skewed clock can hand out a certificate already past its renewal point; the
    // floor keeps that from becoming an issue loop.
    return Math.min(end, Math.max(target, now + this.#backoff.initialMs));
  }

  #backoffDelay(failures: number): number {
    const { initialMs, maxMs } = this.#backoff;
    const base = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 32));
    return Math.round(base * (1 + BACKOFF_JITTER * this.#random()));
  }

  #schedule(entry: Entry, at: number): void {
    this.#cancelTimer(entry);
    entry.dueAt = at;
    const delay = Math.min(Math.max(0, at - this.#clock.now()), MAX_TIMER_MS);
    entry.timer = this.#arm(() => this.#onTimer(entry), delay);
  }

  #onTimer(entry: Entry): void {
    entry.timer = undefined;
    if (entry.gone || entry.dueAt === undefined) return;
    if (this.#clock.now() < entry.dueAt) {
      this.#schedule(entry, entry.dueAt); // a hop of a long delay, or a timer that fired early
      return;
    }
    void this.#start(entry);
  }

  #arm(callback: () => void, ms: number): TimerHandle {
    const handle = this.#timers.setTimeout(callback, ms);
    handle.unref?.();
    return handle;
  }

  #cancelTimer(entry: Entry): void {
    if (entry.timer) this.#timers.clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.dueAt = undefined;
  }

  #retire(entry: Entry, why: string): void {
    entry.gone = true;
    entry.cert = undefined;
    this.#cancelTimer(entry);
    if (entry.attempt) this.#timers.clearTimeout(entry.attempt.deadline);
    entry.attempt?.controller.abort(
      new MeshdError('MESHD_E_CERT_ISSUE', `no certificate for ${entry.identity}: ${why}`),
    );
  }

  #status(entry: Entry, now: number): CertificateStatus {
    const cert = this.#current(entry, now);
    const status: CertificateStatus = {
      identity: entry.identity,
      state: stateOf(entry, cert),
      failures: entry.failures,
    };
    if (cert) {
      status.serial = cert.serial;
      status.notBefore = cert.notBefore;
      status.notAfter = cert.notAfter;
      status.issuer = cert.issuer;
    }
    if (entry.dueAt !== undefined) status.nextAttemptAt = new Date(entry.dueAt);
    if (entry.failures > 0) status.lastError = describeError(entry.lastError);
    return status;
  }
}

function stateOf(entry: Entry, cert: IssuedCertificate | undefined): CertificateState {
  if (entry.failures > 0) return 'failing';
  if (!cert) return 'issuing';
  return entry.attempt ? 'renewing' : 'valid';
}

/**
 * Settles with `work` or with the abort reason, whichever comes first: an issuer that ignores
 * its signal cannot hold up forget(), close() or the issue deadline.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A certificate the manager could not serve or schedule is a failed issue, not a new cert. */
function checkUsable(cert: IssuedCertificate, now: number): void {
  if (!cert.certChainPem || !cert.keyPem) {
    throw new Error('the issuer returned an empty certificate chain or key');
  }
  const from = cert.notBefore.getTime();
  const to = cert.notAfter.getTime();
  if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) {
    throw new Error(
      `the issuer returned certificate ${cert.serial} with an invalid validity period`,
    );
  }
  if (to <= now) {
    throw new Error(
      `the issuer returned certificate ${cert.serial} that expired at ${cert.notAfter.toISOString()}`,
    );
  }
}

function checkOptions(
  renewAt: number,
  jitter: number,
  backoff: BackoffOptions,
  issueTimeoutMs: number,
): void {
  const bad = (what: string, rule: string) =>
    new MeshdError('MESHD_E_CONFIG', `certificate manager: ${what}: ${rule}`);
  if (!(renewAt > 0 && renewAt < 1)) {
    throw bad(`renewAtFraction=${renewAt}`, 'must be between 0 and 1');
  }
  if (!(jitter >= 0 && jitter < Math.min(renewAt, 1 - renewAt))) {
    throw bad(`jitterFraction=${jitter}`, 'renewal ± jitter must stay inside the lifetime');
  }
  if (!(backoff.initialMs > 0 && backoff.maxMs >= backoff.initialMs)) {
    throw bad(`backoff=${JSON.stringify(backoff)}`, 'need 0 < initialMs <= maxMs');
  }
  if (!(issueTimeoutMs > 0)) {
    throw bad(`issueTimeoutMs=${issueTimeoutMs}`, 'must be positive');
  }
}
