/**
 * meshd-cni: the chained CNI plugin (CNI spec 1.0/1.1; docs/cni.md). `runCni` takes the CNI
 * environment and stdin, talks to the node's meshd agent through an injected transport and
 * returns the one thing the plugin prints: the result or a CNI error `{code,msg,details}`.
 * ADD fails when the agent cannot be asked (no packet leaves uncaptured); DEL is best effort.
 */
import type {
  AgentCniAnswer,
  AgentCniRequest,
  AgentRequest,
  AgentResponse,
  AgentSend,
} from './plugin-agent.js';
import {
  CNI_DEFAULTS,
  CNI_ERROR,
  CNI_LATEST_VERSION,
  CNI_SUPPORTED_VERSIONS,
  CniError,
  type CniVerb,
  type CniVersion,
  decodeStdin,
  logFileOf,
  negotiateVersion,
  type PluginSettings,
  parseCniArgs,
  parseLabels,
  parseRuntimeEnv,
  parseSettings,
  parseVerb,
  requirePrevResult,
  resultAddresses,
  workloadIdentity,
} from './plugin-config.js';

export { CNI_SUPPORTED_VERSIONS };

/** What the plugin prints on stdout (one JSON document, or nothing) and its exit status. */
export interface CniOutcome {
  stdout: string;
  exitCode: number;
}

/** One log record; the entry appends it as a JSON line to `logFile` ('' = nowhere). */
export interface CniLogRecord {
  time: string;
  level: 'info' | 'warn' | 'error';
  msg: string;
  command?: string;
  containerId?: string;
  network?: string;
  workload?: string;
  captured?: boolean;
  code?: number;
  details?: string;
  durationMs?: number;
}

export type CniLog = (record: CniLogRecord, logFile: string) => void;

export interface RunCniOptions {
  env: Readonly<Record<string, string | undefined>>;
  /** The network configuration as read from stdin. */
  stdin: string;
  /** Set when stdin could not be read (too large, timed out, read error): code 5. */
  stdinProblem?: string;
  send: AgentSend;
  log?: CniLog;
  /** Clock for log times and durations (tests). */
  now?: () => number;
}

/** The CNI error document (spec §"Error"), printed on stdout with exit status 1. */
export function cniErrorOutcome(
  code: number,
  msg: string,
  details?: string,
  cniVersion: string = CNI_LATEST_VERSION,
): CniOutcome {
  const doc: Record<string, unknown> = { cniVersion, code, msg };
  if (details !== undefined && details !== '') doc.details = details;
  return { stdout: `${JSON.stringify(doc)}\n`, exitCode: 1 };
}

/** The VERSION answer: the input's cniVersion (spec 1.0 §Version) and the supported list. */
export function versionOutcome(cniVersion: string = CNI_LATEST_VERSION): CniOutcome {
  return {
    stdout: `${JSON.stringify({ cniVersion, supportedVersions: CNI_SUPPORTED_VERSIONS })}\n`,
    exitCode: 0,
  };
}

const SUCCESS_NO_OUTPUT: CniOutcome = { stdout: '', exitCode: 0 };

/** Per-run facts the log lines and the error document need, filled in as they are learnt. */
interface RunContext {
  verb?: CniVerb;
  cniVersion: CniVersion;
  logFile: string;
  containerId?: string;
  network?: string;
  workload?: string;
  captured?: boolean;
}

/**
 * Kept from the first build: answers the verbs that need neither stdin nor the agent
 * (VERSION, and CNI_COMMAND errors); every other verb needs `runCni`.
 */
export function handleCni(env: Readonly<Record<string, string | undefined>>): CniOutcome {
  try {
    const verb = parseVerb(env.CNI_COMMAND);
    if (verb === 'VERSION') return versionOutcome();
    return cniErrorOutcome(
      CNI_ERROR.internal,
      `meshd-cni ${verb} needs the network configuration and the agent: call runCni`,
    );
  } catch (err) {
    if (err instanceof CniError) return cniErrorOutcome(err.code, err.message, err.details);
    throw err;
  }
}

/** One invocation of the plugin. Never throws: every failure becomes a CNI error outcome. */
export async function runCni(options: RunCniOptions): Promise<CniOutcome> {
  const now = options.now ?? Date.now;
  const started = now();
  const ctx: RunContext = { cniVersion: CNI_LATEST_VERSION, logFile: CNI_DEFAULTS.logFile };
  const log = (
    level: CniLogRecord['level'],
    msg: string,
    extra: Partial<CniLogRecord> = {},
  ): void => {
    if (!options.log || ctx.logFile === '') return;
    try {
      const record: CniLogRecord = {
        time: new Date(now()).toISOString(),
        level,
        msg,
        command: ctx.verb,
        containerId: ctx.containerId,
        network: ctx.network,
        workload: ctx.workload,
        captured: ctx.captured,
        ...extra,
      };
      options.log(record, ctx.logFile);
    } catch {
      // Logging never changes the answer to the runtime.
    }
  };
  try {
    const outcome = await dispatch(options, ctx, log);
    log('info', `${ctx.verb} done`, { durationMs: now() - started });
    return outcome;
  } catch (err) {
    const e =
      err instanceof CniError
        ? err
        : new CniError(
            CNI_ERROR.internal,
            `meshd-cni failed unexpectedly: ${err instanceof Error ? err.message : String(err)}`,
            'this is a bug in meshd-cni; the log file has the details',
            { cause: err },
          );
    log('error', e.message, {
      code: e.code,
      details:
        e.code === CNI_ERROR.internal && err instanceof Error
          ? (err.stack ?? e.details)
          : e.details,
      durationMs: now() - started,
    });
    return cniErrorOutcome(e.code, e.message, e.details, ctx.cniVersion);
  }
}

type Log = (level: CniLogRecord['level'], msg: string, extra?: Partial<CniLogRecord>) => void;

async function dispatch(options: RunCniOptions, ctx: RunContext, log: Log): Promise<CniOutcome> {
  const { env } = options;
  ctx.verb = parseVerb(env.CNI_COMMAND);
  ctx.containerId = env.CNI_CONTAINERID || undefined;

  if (ctx.verb === 'VERSION') return version(options.stdin);

  if (options.stdinProblem !== undefined) {
    throw new CniError(
      CNI_ERROR.ioFailure,
      'could not read the network configuration from stdin',
      options.stdinProblem,
    );
  }
  const config = decodeStdin(options.stdin);
  ctx.logFile = logFileOf(config);
  const cniVersion = negotiateVersion(config, ctx.verb);
  ctx.cniVersion = cniVersion;
  const settings = parseSettings(config, cniVersion);
  ctx.logFile = settings.logFile;
  ctx.network = settings.network || undefined;

  switch (ctx.verb) {
    case 'GC':
      // meshd-cni keeps no state; the agent owns (and reconciles) the workload set.
      return SUCCESS_NO_OUTPUT;
    case 'STATUS':
      return status(options.send, settings);
    case 'ADD':
    case 'CHECK': {
      const runtime = parseRuntimeEnv(env, ctx.verb);
      const prev = requirePrevResult(config, ctx.verb);
      const identity = workloadIdentity(
        parseCniArgs(env.CNI_ARGS),
        parseLabels(config),
        runtime.containerId,
      );
      ctx.workload = `${identity.namespace}/${identity.name}`;
      const body: AgentCniRequest = {
        command: ctx.verb,
        containerId: runtime.containerId,
        netns: runtime.netns,
        ifName: runtime.ifName,
        cniVersion,
        namespace: identity.namespace,
        name: identity.name,
        ...(identity.uid ? { uid: identity.uid } : {}),
        ...(identity.serviceAccount ? { serviceAccount: identity.serviceAccount } : {}),
        labels: identity.labels,
        ips: resultAddresses(prev),
      };
      const answer = await askAgent(options.send, settings, body);
      ctx.captured = answer.captured;
      if (ctx.verb === 'CHECK') return SUCCESS_NO_OUTPUT;
      return passThrough(prev, cniVersion);
    }
    case 'DEL':
      return del(options, config, settings, ctx, log);
  }
}

function version(stdin: string): CniOutcome {
  // VERSION always answers: a runtime probes with {"cniVersion": "…"}, a human with nothing.
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown } | null)?.cniVersion;
    if (typeof v === 'string' && v !== '') return versionOutcome(v);
  } catch {
    // not JSON: answer with the latest version
  }
  return versionOutcome();
}

/** prevResult unchanged, labelled with the cniVersion the runtime asked for. */
function passThrough(prev: Record<string, unknown>, cniVersion: CniVersion): CniOutcome {
  const result = 'cniVersion' in prev ? { ...prev, cniVersion } : { cniVersion, ...prev };
  return { stdout: `${JSON.stringify(result)}\n`, exitCode: 0 };
}

async function del(
  options: RunCniOptions,
  config: Record<string, unknown>,
  settings: PluginSettings,
  ctx: RunContext,
  log: Log,
): Promise<CniOutcome> {
  const { env } = options;
  const runtime = parseRuntimeEnv(env, 'DEL');
  // DEL cleans up as much as it can: odd CNI_ARGS, labels or prevResult do not stop it.
  let args = new Map<string, string>();
  let labels: Record<string, string> = {};
  let ips: string[] = [];
  try {
    args = parseCniArgs(env.CNI_ARGS);
  } catch (err) {
    log('warn', `DEL goes on without CNI_ARGS: ${(err as Error).message}`);
  }
  try {
    labels = parseLabels(config);
  } catch (err) {
    log('warn', `DEL goes on without labels: ${(err as Error).message}`);
  }
  if (config.prevResult !== undefined && config.prevResult !== null) {
    try {
      ips = resultAddresses(requirePrevResult(config, 'ADD'));
    } catch (err) {
      log('warn', `DEL goes on without the prevResult addresses: ${(err as Error).message}`);
    }
  }
  const identity = workloadIdentity(args, labels, runtime.containerId);
  ctx.workload = `${identity.namespace}/${identity.name}`;
  const body: AgentCniRequest = {
    command: 'DEL',
    containerId: runtime.containerId,
    netns: runtime.netns,
    ifName: runtime.ifName,
    cniVersion: settings.cniVersion,
    namespace: identity.namespace,
    name: identity.name,
    ...(identity.uid ? { uid: identity.uid } : {}),
    ...(identity.serviceAccount ? { serviceAccount: identity.serviceAccount } : {}),
    labels: identity.labels,
    ips,
  };
  let response: AgentResponse;
  try {
    response = await exchange(options.send, {
      socketPath: settings.agentSocket,
      timeoutMs: settings.timeoutMs,
      method: 'POST',
      path: '/v1/cni',
      body,
    });
  } catch (err) {
    // The agent is down or slow: DEL still succeeds (the runtime would otherwise retry it
    // forever); forgetting the container is then the agent's reconciliation (docs/cni.md).
    const e = err as CniError;
    log('warn', `DEL reported success without the agent: ${e.message}`, {
      code: e.code,
      details: e.details,
    });
    return SUCCESS_NO_OUTPUT;
  }
  try {
    ctx.captured = readCniAnswer(response, settings).captured;
  } catch (err) {
    if (err instanceof CniError && err.code === CNI_ERROR.unknownContainer) {
      log('info', `DEL of a container the agent does not know: ${err.message}`);
      return SUCCESS_NO_OUTPUT;
    }
    throw err;
  }
  return SUCCESS_NO_OUTPUT;
}

async function askAgent(
  send: AgentSend,
  settings: PluginSettings,
  body: AgentCniRequest,
): Promise<AgentCniAnswer> {
  const response = await exchange(send, {
    socketPath: settings.agentSocket,
    timeoutMs: settings.timeoutMs,
    method: 'POST',
    path: '/v1/cni',
    body,
  });
  return readCniAnswer(response, settings);
}

const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTSOCK']);

/** One exchange; a missing answer becomes code 11 (agent down or slow) or 5 (other I/O). */
async function exchange(send: AgentSend, request: AgentRequest): Promise<AgentResponse> {
  try {
    return await send(request);
  } catch (err) {
    const code =
      err && typeof err === 'object' && 'code' in err && typeof err.code === 'string'
        ? err.code
        : '';
    const message = err instanceof Error ? err.message : String(err);
    const what = request.body ? request.body.command : 'STATUS';
    if (code === 'ETIMEDOUT') {
      throw new CniError(
        CNI_ERROR.tryAgainLater,
        `meshd agent at ${request.socketPath} did not answer ${what} within ${request.timeoutMs} ms`,
        'the agent is slow or stuck; see the meshd agent log. The runtime retries; raise timeoutMs in the meshd-cni config if captures are slow on this node',
        { cause: err },
      );
    }
    if (UNREACHABLE.has(code)) {
      throw new CniError(
        CNI_ERROR.tryAgainLater,
        `meshd agent unreachable at ${request.socketPath} (${code}): is meshd agent running on this node?`,
        `${message}. meshd-cni does not let a workload start uncaptured; start meshd agent on this node or fix agentSocket in the meshd-cni config`,
        { cause: err },
      );
    }
    throw new CniError(
      CNI_ERROR.ioFailure,
      `talking to meshd agent at ${request.socketPath} failed${code ? ` (${code})` : ''}`,
      message,
      { cause: err },
    );
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function preview(body: unknown): string {
  const text = typeof body === 'string' ? body : (JSON.stringify(body) ?? '(empty)');
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** The agent's CNI error passed on as ours, or a protocol error when the answer is not one. */
function agentError(response: AgentResponse, settings: PluginSettings): CniError {
  const b = response.body;
  if (
    isRecord(b) &&
    typeof b.code === 'number' &&
    Number.isInteger(b.code) &&
    b.code > 0 &&
    typeof b.msg === 'string'
  ) {
    return new CniError(b.code, b.msg, typeof b.details === 'string' ? b.details : undefined);
  }
  return new CniError(
    CNI_ERROR.agentProtocol,
    `meshd agent at ${settings.agentSocket} answered HTTP ${response.status} without a CNI error`,
    `answer: ${preview(b)}; is the agent the same meshd version as meshd-cni?`,
  );
}

function readCniAnswer(response: AgentResponse, settings: PluginSettings): AgentCniAnswer {
  if (response.status !== 200) throw agentError(response, settings);
  const b = response.body;
  if (!isRecord(b) || typeof b.captured !== 'boolean') {
    throw new CniError(
      CNI_ERROR.agentProtocol,
      `meshd agent at ${settings.agentSocket} answered 200 without {"captured", "workload"}`,
      `answer: ${preview(b)}; is the agent the same meshd version as meshd-cni?`,
    );
  }
  return { captured: b.captured, workload: typeof b.workload === 'string' ? b.workload : '' };
}

async function status(send: AgentSend, settings: PluginSettings): Promise<CniOutcome> {
  let response: AgentResponse;
  try {
    response = await exchange(send, {
      socketPath: settings.agentSocket,
      timeoutMs: Math.min(settings.timeoutMs, CNI_DEFAULTS.statusTimeoutMs),
      method: 'GET',
      path: '/v1/status',
    });
  } catch (err) {
    const e = err as CniError;
    throw new CniError(CNI_ERROR.notAvailable, e.message, e.details, { cause: err });
  }
  const b = response.body;
  if (response.status === 200 && isRecord(b) && b.ready === true) return SUCCESS_NO_OUTPUT;
  if (response.status === 200) {
    const reason =
      isRecord(b) && typeof b.reason === 'string'
        ? b.reason
        : isRecord(b) && typeof b.msg === 'string'
          ? b.msg
          : 'the agent has not loaded the mesh state yet (no contact with meshd server and no saved state)';
    throw new CniError(
      CNI_ERROR.notAvailable,
      `meshd agent at ${settings.agentSocket} is not ready: ADD would wait or fail`,
      reason,
    );
  }
  const e = agentError(response, settings);
  if (e.code === CNI_ERROR.notAvailable || e.code === CNI_ERROR.notAvailableLimited) throw e;
  throw new CniError(
    CNI_ERROR.notAvailable,
    `meshd agent at ${settings.agentSocket} answered STATUS with HTTP ${response.status}`,
    `${e.message}${e.details ? `: ${e.details}` : ''}`,
  );
}
