/**
 * The composition root of `meshd server`: builds everything from one ServerConfig (CA snapshot,
 * join-token store, workload directory, the server's own certificate, the gRPC Identity service
 * over mTLS, the monitoring endpoint) and hands back the ports and close/reload.
 */
import { Registry } from 'prom-client';
import type { ServerConfig } from '../config.js';
import { describeError, MeshdError } from '../errors.js';
import type { Clock } from '../identity/index.js';
import { grpc, identityService, registryService } from '../proto/index.js';
import {
  createJsonLogger,
  type HttpEndpoint,
  hostPort,
  type Logger,
  metricsRoute,
  readinessRoute,
  startHttpEndpoint,
} from '../telemetry/index.js';
import { type CaSnapshot, loadCaSnapshot } from './ca-state.js';
import { identityHandlers } from './identity-service.js';
import { ServerMetrics } from './metrics.js';
import {
  CombinedWorkloadDirectory,
  RegistryCache,
  RegistryWorkloadDirectory,
  registryHandlers,
} from './registry/index.js';
import { ServingIdentity } from './serving-identity.js';
import { openStore, type Store } from './store/index.js';
import { JoinTokenStore } from './tokens.js';
import { StaticWorkloadDirectory, type WorkloadDirectory } from './workloads.js';

export interface ServerDeps {
  /** Default: JSON lines on stderr at config.logLevel. */
  logger?: Logger;
  /** Default: Date. Drives token expiry, certificate validity and peer verification. */
  clock?: Clock;
  /**
   * Replaces the static MESHD_WORKLOADS_FILE directory (the control-plane registry will);
   * an injected directory is not re-read by reload().
   */
  workloads?: WorkloadDirectory;
  /** A store opened by the caller (tests); default: openStore(config.store). Not closed by close(). */
  store?: Store;
  /** Change batches kept for Watch resumes (default 1000); older resumes get a snapshot. */
  registryHistory?: number;
  /** How long close() lets calls in flight finish before cutting them (default 5 s). */
  shutdownTimeoutMs?: number;
}

export interface ServerHandle {
  grpcPort: number;
  monitoringPort: number;
  /** The app's Prometheus registry (what /metrics serves). */
  metrics: Registry;
  /** Graceful: refuse new calls, let running ones finish (bounded), then stop. Idempotent. */
  close(): Promise<void>;
  /**
   * Re-reads the CA directory (after `meshctl ca rotate`) and the workloads file. On failure the
   * server keeps the CA it had and the promise rejects with the reason.
   */
  reload(): Promise<void>;
}

export async function startServer(
  config: Readonly<ServerConfig>,
  deps: ServerDeps = {},
): Promise<ServerHandle> {
  const logger =
    deps.logger ?? createJsonLogger({ level: config.logLevel, base: { role: 'server' } });
  const clock: Clock = deps.clock ?? Date;
  const shutdownTimeoutMs = deps.shutdownTimeoutMs ?? 5_000;
  const trustDomain = config.trustDomain;

  let snapshot: CaSnapshot = await loadCaSnapshot(config.caDir, trustDomain, clock.now());
  const tokens = await JoinTokenStore.open(config.dataDir, () => clock.now());
  let staticWorkloads: WorkloadDirectory =
    deps.workloads ?? (await StaticWorkloadDirectory.load(config.workloadsFile, trustDomain));
  const store: Store =
    deps.store ??
    (await openStore(config.store ?? `${config.dataDir}/store`, {
      logger: logger.child({ component: 'store' }),
    }));
  let cache: RegistryCache;
  try {
    cache = await RegistryCache.start(
      store,
      logger.child({ component: 'registry' }),
      deps.registryHistory,
    );
  } catch (err) {
    await store.close();
    throw err;
  }
  const registryWorkloads = new RegistryWorkloadDirectory(cache, trustDomain);
  const workloads = new CombinedWorkloadDirectory(() => [registryWorkloads, staticWorkloads]);

  const registry = new Registry();
  const metrics = new ServerMetrics(registry);
  const serving = new ServingIdentity({
    trustDomain,
    ttlMs: config.maxCertTtlMs,
    clock,
    snapshot: () => snapshot,
    metrics: registry,
    logger: logger.child({ component: 'serving-certificate' }),
  });
  try {
    await serving.start();
  } catch (err) {
    cache.close();
    if (!deps.store) await store.close();
    throw err;
  }

  const server = new grpc.Server({
    // CSRs and tokens are small; an Apply of a few thousand resources is the largest request.
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  });
  server.addService(
    identityService().service,
    identityHandlers({
      trustDomain,
      maxCertTtlMs: config.maxCertTtlMs,
      nodeCertTtlMs: config.nodeCertTtlMs,
      snapshot: () => snapshot,
      tokens,
      workloads: () => workloads,
      clock,
      metrics,
      logger,
    }),
  );
  server.addService(
    registryService().service,
    registryHandlers({
      store,
      cache,
      snapshot: () => snapshot,
      clock,
      logger: logger.child({ component: 'registry' }),
    }),
  );

  const grpcAddress = hostPort(config.listenAddress, config.grpcPort);
  let grpcPort: number;
  try {
    grpcPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(grpcAddress, serving.credentials, (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
  } catch (cause) {
    server.forceShutdown();
    serving.close();
    cache.close();
    if (!deps.store) await store.close();
    // grpc-js wraps the system errors: "No address added out of total 1 resolved errors: [...]".
    const message = String((cause as Error).message);
    const system = /errors: \[(.+)\]$/.exec(message)?.[1] ?? message;
    throw new MeshdError('MESHD_E_LISTEN', `cannot listen for gRPC on ${grpcAddress}: ${system}`, {
      cause,
      hint: /EADDRINUSE/.test(message)
        ? 'another process holds the port; stop it or set MESHD_GRPC_PORT'
        : undefined,
    });
  }

  let state: 'ready' | 'stopping' = 'ready';
  let monitoring: HttpEndpoint;
  try {
    monitoring = await startHttpEndpoint({
      host: config.listenAddress,
      port: config.monitoringPort,
      logger,
      routes: {
        '/healthz/ready': readinessRoute(() =>
          state === 'ready' ? { ready: true } : { ready: false, reason: 'shutting down' },
        ),
        '/metrics': metricsRoute(registry),
      },
    });
  } catch (err) {
    server.forceShutdown();
    serving.close();
    cache.close();
    if (!deps.store) await store.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      state = 'stopping';
      logger.info({ timeoutMs: shutdownTimeoutMs }, 'shutting down');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          logger.warn({ timeoutMs: shutdownTimeoutMs }, 'calls still running; cutting them');
          server.forceShutdown();
          resolve();
        }, shutdownTimeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      serving.close();
      cache.close();
      await monitoring.close();
      if (!deps.store) await store.close();
      logger.info({}, 'stopped');
    })();
    return closing;
  };

  let reloading: Promise<void> = Promise.resolve();
  const reload = () => {
    const run = async () => {
      try {
        const next = await loadCaSnapshot(config.caDir, trustDomain, clock.now());
        const nextWorkloads =
          deps.workloads ?? (await StaticWorkloadDirectory.load(config.workloadsFile, trustDomain));
        snapshot = next;
        staticWorkloads = nextWorkloads;
        const { reissued } = await serving.refresh(next);
        metrics.caReloads.inc({ result: 'success' });
        logger.info(
          {
            roots: next.roots.length,
            intermediates: next.intermediates.length,
            rotating: next.ca.rotating,
            servingCertificateReissued: reissued,
          },
          'CA and workloads reloaded',
        );
      } catch (err) {
        metrics.caReloads.inc({ result: 'failure' });
        logger.error({ err: describeError(err) }, 'reload failed; keeping the previous CA');
        throw err;
      }
    };
    const result = reloading.then(run, run);
    reloading = result.catch(() => {});
    return result;
  };

  logger.info(
    {
      grpc: hostPort(config.listenAddress, grpcPort),
      monitoring: hostPort(config.listenAddress, monitoring.port),
      trustDomain,
      caDir: config.caDir,
      identity: serving.id,
      roots: snapshot.roots.length,
    },
    'meshd server listening',
  );
  return { grpcPort, monitoringPort: monitoring.port, metrics: registry, close, reload };
}
