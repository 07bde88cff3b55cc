/**
 * The composition root of `meshd agent`. At this stage it holds the node's identity (join,
 * node certificate, trust bundle, workload certificates) and serves the admin, metrics and
 * readiness endpoints; capture and the HBONE data path arrive with the node-proxy issue.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AggregatorRegistry, Gauge, Registry } from 'prom-client';
import type { AgentConfig, LogLevel } from '../config.js';
import { StateSync } from '../discovery/index.js';
import { MeshdError } from '../errors.js';
import type { CertificateStatus } from '../identity/index.js';
import { trimMallocArenas } from '../net/index.js';
import { RegistryClient } from '../proto/index.js';
import {
  createJsonLogger,
  type HttpEndpoint,
  type LevelControl,
  LOG_LEVELS,
  type Logger,
  metricsRoute,
  readinessRoute,
  startHttpEndpoint,
} from '../telemetry/index.js';
import { CniEndpoint } from './cni-endpoint.js';
import type { HboneDefences } from './data-path.js';
import { Dataplane, type DataplaneOptions } from './dataplane.js';
import { AgentIdentity } from './identity.js';
import { MemoryTrimmer } from './memory-trimmer.js';
import { DataPathThreads } from './threads.js';
import { waypointRoutes } from './waypoint-endpoint.js';

export interface AgentDeps {
  logger?: Logger;
  /** Lets GET /logging?level= change the log level at run time. */
  levels?: LevelControl;
  /** Where the admin endpoint listens (DESIGN: loopback only). */
  adminHost?: string;
  /** Where metrics and readiness listen. */
  monitoringHost?: string;
}

export interface AgentHandle {
  identity: AgentIdentity;
  sync: StateSync;
  /** Resolves when a data-path thread stopped on its own (never without threads). */
  threadFailed: Promise<Error>;
  adminPort: number;
  metricsPort: number;
  readinessPort: number;
  close(): Promise<void>;
}

/** One row of /certs and `meshctl certs`. */
export interface CertificateRow {
  identity: string;
  state: string;
  serial: string | undefined;
  notBefore: string | undefined;
  notAfter: string | undefined;
  issuer: string | undefined;
}

function readBundle(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    throw new MeshdError(
      'MESHD_E_CONFIG',
      `MESHD_CA_BUNDLE=${JSON.stringify(file)}: cannot read it`,
      { cause },
    );
  }
}

export function certificateRows(list: CertificateStatus[]): CertificateRow[] {
  return list.map((c) => ({
    identity: c.identity,
    state: c.state,
    serial: c.serial,
    notBefore: c.notBefore?.toISOString(),
    notAfter: c.notAfter?.toISOString(),
    issuer: c.issuer,
  }));
}

const json = (value: unknown) => ({
  status: 200,
  body: `${JSON.stringify(value, null, 2)}\n`,
  contentType: 'application/json',
});

/** GET /logging shows the level; GET /logging?level=debug changes it (like ztunnel's admin). */
function loggingRoute(url: string, levels: LevelControl | undefined, logger: Logger) {
  if (!levels) return { status: 404, body: 'log level is fixed in this process\n' };
  const wanted = new URL(url, 'http://admin').searchParams.get('level');
  if (wanted !== null) {
    if (!(LOG_LEVELS as string[]).includes(wanted)) {
      return { status: 400, body: `unknown level "${wanted}" (use ${LOG_LEVELS.join(', ')})\n` };
    }
    levels.setLevel(wanted as LogLevel);
    logger.info({ level: wanted }, 'log level changed');
  }
  return { status: 200, body: `level: ${levels.level()}\n` };
}

/** GET /connections: what the agent proxies right now (`meshctl agent connections`). */
async function connectionsReport(nodeName: string, dataplane: Dataplane) {
  return { nodeName, connections: (await dataplane.live()).connections };
}

/** Everything the agent knows, sorted and stable, for /config_dump and `meshctl agent -f`. */
async function configDump(
  nodeName: string,
  identity: AgentIdentity,
  sync: StateSync,
  dataplane: Dataplane,
) {
  const state = sync.state.toJSON();
  const live = await dataplane.live();
  return {
    node: identity.nodeId,
    nodeName,
    pool: live.pool,
    captured: dataplane
      .captured()
      .map((w) => ({
        workload: `${w.ref.namespace}/${w.ref.name}`,
        identity: w.identity,
        netns: w.netns,
        addresses: [...w.addresses].sort(),
      }))
      .sort((a, b) => a.workload.localeCompare(b.workload)),
    roots: identity.roots.length,
    certificates: certificateRows(identity.list()),
    connections: live.connections,
    registry: {
      revision: state.revision,
      source: sync.source,
      connectedTo: sync.connectedTo ?? null,
      resources: state.resources,
    },
  };
}

function startThreads(
  config: Readonly<AgentConfig>,
  options: DataplaneOptions,
  sync: StateSync,
  identity: AgentIdentity,
  logger: Logger,
  levels: LevelControl | undefined,
  onFailure: (err: Error) => void,
): Promise<DataPathThreads> {
  return DataPathThreads.start({
    count: config.threads - 1,
    options: { ...options, ownsRules: false, reusePort: true },
    logLevel: levels?.level() ?? config.logLevel,
    sync,
    certificates: identity,
    logger,
    onFailure,
  });
}

/**
 * /metrics with data-path threads: every thread's series, summed by their labels. A thread
 * that does not answer in time is left out and counted in meshd_dataplane_threads.
 */
function threadMetricsRoute(registry: Registry, threads: DataPathThreads) {
  const gauge = new Gauge({
    name: 'meshd_dataplane_threads',
    help: 'Data-path threads of the agent (the main thread included), by whether they answered this scrape',
    labelNames: ['state'],
    registers: [registry],
  });
  return async () => {
    const { reports, unanswered } = await threads.collect();
    gauge.set({ state: 'answering' }, 1 + reports.length);
    gauge.set({ state: 'not_answering' }, unanswered.length);
    const own = await registry.getMetricsAsJSON();
    const all = AggregatorRegistry.aggregate([own, ...reports.map((r) => r.metrics)]);
    return { status: 200, body: await all.metrics(), contentType: all.contentType };
  };
}

export async function startAgent(
  config: Readonly<AgentConfig>,
  deps: AgentDeps = {},
): Promise<AgentHandle> {
  const own = deps.logger
    ? undefined
    : createJsonLogger({ level: config.logLevel, base: { role: 'agent', node: config.nodeName } });
  const logger: Logger = deps.logger ?? (own as Logger);
  const levels = deps.levels ?? own;
  const registry = new Registry();
  const servers = config.serverAddress
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const identity = await AgentIdentity.start({
    stateDir: config.stateDir,
    serverAddress: servers[0] ?? config.serverAddress,
    trustDomain: config.trustDomain,
    nodeName: config.nodeName,
    joinToken: config.joinToken,
    initialBundlePem: readBundle(config.caBundleFile),
    workloadTtlSeconds: Math.round(config.certTtlMs / 1000),
    nodeTtlSeconds: Math.round(config.certTtlMs / 1000),
    bundleRefreshMs: config.bundleRefreshMs,
    metrics: registry,
    logger: logger.child({ component: 'certificates' }),
  });
  logger.info(
    { node: identity.nodeId, notAfter: identity.nodeCertificate.notAfter.toISOString() },
    'node identity ready',
  );
  const sync = new StateSync({
    servers,
    node: config.nodeName,
    stateFile: join(config.stateDir, 'registry-state.json'),
    logger: logger.child({ component: 'registry' }),
    credentials: () => identity.clientCredentials(),
  });
  const dataPathOptions = {
    node: config.nodeName,
    trustDomain: config.trustDomain,
    mark: config.captureMark,
    connectTimeoutMs: config.connectTimeoutMs,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    idleTimeoutMs: config.poolIdleTimeoutMs,
    // The limits hold per workload: each thread takes its share.
    maxConnectionsPerWorkload: Math.ceil(config.maxConnectionsPerWorkload / config.threads),
    maxPendingConnectsPerWorkload: Math.ceil(config.maxPendingConnectsPerWorkload / config.threads),
    defences: hboneDefences(config),
  };
  let reportThreadFailure: (err: Error) => void = () => {};
  const threadFailed = new Promise<Error>((resolve) => {
    reportThreadFailure = resolve;
  });
  let threads: DataPathThreads | undefined;
  try {
    threads =
      config.threads > 1
        ? await startThreads(config, dataPathOptions, sync, identity, logger, levels, (err) =>
            reportThreadFailure(err),
          )
        : undefined;
  } catch (err) {
    sync.close();
    identity.close();
    throw err;
  }
  const dataplane = new Dataplane(
    dataPathOptions,
    sync,
    identity,
    registry,
    logger.child({ component: 'dataplane' }),
    threads,
  );
  const nodeCredentials = () => identity.clientCredentials();
  dataplane.onGone(async (w) => {
    const client = new RegistryClient({
      ...nodeCredentials(),
      server: servers[0] ?? config.serverAddress,
    });
    try {
      await client.delete({
        ref: { kind: 'Workload', namespace: w.metadata.namespace ?? '', name: w.metadata.name },
        resourceVersion: '',
      });
      logger.info(
        { workload: `${w.metadata.namespace}/${w.metadata.name}` },
        'gone workload deregistered',
      );
    } finally {
      client.close();
    }
  });
  sync.start();
  dataplane.reconcile();
  let cni: CniEndpoint;
  try {
    cni = await CniEndpoint.start({
      socketPath: config.cniSocket,
      node: config.nodeName,
      servers,
      credentials: nodeCredentials,
      sync,
      dataplane,
      logger: logger.child({ component: 'cni' }),
      captureTimeoutMs: config.cniCaptureTimeoutMs,
    });
  } catch (err) {
    await dataplane.close();
    sync.close();
    identity.close();
    throw err;
  }
  cni.addRoutes(
    waypointRoutes({
      node: config.nodeName,
      trustDomain: config.trustDomain,
      servers,
      state: () => sync.state,
      apply: (w) => cni.applyWorkload(w),
      remove: (ns, name) => cni.deleteWorkload(ns, name),
      signCsr: (csr) => identity.signCsr(csr),
      roots: () => identity.roots,
    }),
  );
  let stopping = false;
  const endpoints: HttpEndpoint[] = [];
  try {
    const monitoringHost = deps.monitoringHost ?? '0.0.0.0';
    endpoints.push(
      await startHttpEndpoint({
        host: deps.adminHost ?? '127.0.0.1',
        port: config.adminPort,
        logger,
        routes: {
          '/certs': () => json(certificateRows(identity.list())),
          '/config_dump': async () =>
            json(await configDump(config.nodeName, identity, sync, dataplane)),
          '/connections': async () => json(await connectionsReport(config.nodeName, dataplane)),
          '/logging': (req) => {
            const reply = loggingRoute(req.url ?? '', levels, logger);
            if (levels) threads?.setLogLevel(levels.level());
            return reply;
          },
        },
      }),
      await startHttpEndpoint({
        host: monitoringHost,
        port: config.metricsPort,
        logger,
        routes: {
          '/metrics': threads ? threadMetricsRoute(registry, threads) : metricsRoute(registry),
        },
      }),
      await startHttpEndpoint({
        host: monitoringHost,
        port: config.readinessPort,
        logger,
        routes: {
          '/healthz/ready': readinessRoute(() => {
            if (stopping) return { ready: false, reason: 'shutting down' };
            if (sync.source === 'empty') return { ready: false, reason: 'no registry state yet' };
            if (!dataplane.ready) return { ready: false, reason: 'capturing local workloads' };
            return { ready: true };
          }),
        },
      }),
    );
  } catch (err) {
    await Promise.all(endpoints.map((e) => e.close()));
    await cni.close();
    await dataplane.close();
    sync.close();
    identity.close();
    throw err;
  }
  const [admin, metrics, readiness] = endpoints as [HttpEndpoint, HttpEndpoint, HttpEndpoint];
  const trimmer = new MemoryTrimmer({
    trim: () => {
      threads?.trim();
      return trimMallocArenas();
    },
    logger,
  });
  trimmer.start();
  const closeNow = async (): Promise<void> => {
    stopping = true;
    trimmer.close();
    await cni.close();
    await dataplane.close(config.drainTimeoutMs);
    sync.close();
    identity.close();
    await Promise.all(endpoints.map((e) => e.close()));
    logger.info({}, 'agent stopped');
  };
  // One close for every caller: a signal during a stop for a failed thread waits for it.
  let closing: Promise<void> | undefined;
  return {
    identity,
    sync,
    adminPort: admin.port,
    metricsPort: metrics.port,
    readinessPort: readiness.port,
    threadFailed,
    close() {
      closing ??= closeNow();
      return closing;
    },
  };
}

/** The HBONE listeners' defences of one data-path thread: the agent's limits, shared out. */
function hboneDefences(config: AgentConfig): HboneDefences {
  const share = (n: number) => Math.max(1, Math.ceil(n / config.threads));
  return {
    maxHandshakes: share(config.hboneMaxHandshakes),
    maxHandshakesPerSource: share(config.hboneMaxHandshakesPerSource),
    cancelledStreamBurst: config.hboneCancelledStreamBurst,
    cancelledStreamRate: config.hboneCancelledStreamRate,
    penaltyMs: config.hbonePenaltyMs,
    streamRatePerSource: share(config.hboneStreamRatePerSource),
    deadPeerTimeoutMs: config.hboneDeadPeerTimeoutMs,
  };
}
