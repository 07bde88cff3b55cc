/**
 * The agent's endpoint for meshd-cni: HTTP over a unix socket (mode 0600). ADD registers the
 * Workload with the registry (as this node) and, when it is enrolled, answers only once its
 * traffic is captured, so no packet of an enrolled workload leaves uncaptured. DEL deregisters
 * it (idempotent); CHECK verifies rules and listeners are in place.
 */
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { captureStatus } from '../../cni/index.js';
import { describeError, MeshdError } from '../errors.js';
import { type Resource, validateResource, type Workload } from '../model/index.js';
import {
  type ClientCredentials,
  ControlPlaneCallError,
  grpc,
  RegistryClient,
} from '../proto/index.js';
import type { Logger } from '../telemetry/index.js';

/*
 * Not `import … from 'node:http'`: an ES import of node:http reads every export of the module,
 * and its WebSocket/MessageEvent getters load Node's bundled undici (~3 MiB resident) that the
 * agent never uses (docs/benchmarks.md, "Agent memory").
 */
const { createServer } = process.getBuiltinModule('node:http');

import type { StateSync } from '../discovery/index.js';
import type { Dataplane } from './dataplane.js';

/** CNI error codes (spec §Error): 7 invalid config, 11 try again later; 100+ ours. */
const CNI = { invalidConfig: 7, tryAgainLater: 11, notCaptured: 100, registry: 101 } as const;

export interface CniRequest {
  command: 'ADD' | 'DEL' | 'CHECK';
  containerId: string;
  netns: string;
  ifName?: string;
  cniVersion?: string;
  namespace: string;
  name: string;
  serviceAccount?: string;
  labels?: Record<string, string>;
  ips?: string[];
}

export interface CniEndpointOptions {
  socketPath: string;
  node: string;
  servers: string[];
  credentials: () => ClientCredentials;
  sync: StateSync;
  dataplane: Dataplane;
  logger: Logger;
  /** How long ADD waits for an enrolled workload to be captured. */
  captureTimeoutMs: number;
}

class CniFailure extends Error {
  readonly code: number;
  readonly details: string | undefined;
  readonly httpStatus: number;

  constructor(httpStatus: number, code: number, msg: string, details?: string) {
    super(msg);
    this.httpStatus = httpStatus;
    this.code = code;
    this.details = details;
  }
}

const MAX_BODY = 64 * 1024;

/** Further JSON POST routes on the same socket (the waypoint's, see waypoint-endpoint.ts). */
export type LocalRoutes = Record<string, (body: unknown) => Promise<unknown>>;

export class CniEndpoint {
  readonly #options: CniEndpointOptions;
  readonly #server: Server;
  #routes: LocalRoutes = {};

  private constructor(options: CniEndpointOptions) {
    this.#options = options;
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.requestTimeout = options.captureTimeoutMs + 10_000;
  }

  static async start(options: CniEndpointOptions): Promise<CniEndpoint> {
    const endpoint = new CniEndpoint(options);
    mkdirSync(dirname(options.socketPath), { recursive: true, mode: 0o700 });
    if (existsSync(options.socketPath)) {
      if (await answers(options.socketPath)) {
        throw new MeshdError(
          'MESHD_E_LISTEN',
          `another process serves the CNI socket ${options.socketPath}`,
          {
            hint: 'one agent per host; or set MESHD_CNI_SOCKET to another path',
          },
        );
      }
      rmSync(options.socketPath); // left by an agent that is gone
    }
    await new Promise<void>((resolve, reject) => {
      endpoint.#server.once('error', reject);
      endpoint.#server.listen(options.socketPath, () => resolve());
    });
    chmodSync(options.socketPath, 0o600);
    return endpoint;
  }

  addRoutes(routes: LocalRoutes): void {
    this.#routes = { ...this.#routes, ...routes };
  }

  /** Registers a Workload of this node and waits until the local state has it. */
  async applyWorkload(workload: Workload): Promise<void> {
    const { revision } = await this.#registry((c) =>
      c.apply({ resources: [JSON.stringify(workload)], dryRun: false }),
    );
    const deadline = Date.now() + this.#options.captureTimeoutMs;
    if (!(await until(() => this.#options.sync.state.revision >= revision, deadline))) {
      throw new CniFailure(
        503,
        CNI.tryAgainLater,
        `the registry took the change (revision ${revision}) but it did not reach this agent within ${this.#options.captureTimeoutMs} ms`,
      );
    }
  }

  /** Deletes a Workload of this node; one already gone is fine. */
  async deleteWorkload(namespace: string, name: string): Promise<void> {
    await this.#del(
      { command: 'DEL', containerId: '-', netns: '', namespace, name },
      `${namespace}/${name}`,
    );
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    rmSync(this.#options.socketPath, { force: true });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.method === 'GET' && req.url === '/v1/status') {
        reply(200, { ready: this.#options.sync.source !== 'empty' });
        return;
      }
      const route = req.method === 'POST' ? this.#routes[req.url ?? ''] : undefined;
      if (route) {
        await this.#local(route, req, res);
        return;
      }
      if (req.method !== 'POST' || req.url !== '/v1/cni')
        throw new CniFailure(404, CNI.invalidConfig, `no ${req.method} ${req.url}`);
      const request = parseRequest(await readBody(req));
      const result = await this.#run(request);
      reply(200, result);
    } catch (err) {
      const failure =
        err instanceof CniFailure
          ? err
          : new CniFailure(500, CNI.notCaptured, describeError(err).split('\n')[0] ?? 'error');
      this.#options.logger.warn({ code: failure.code, msg: failure.message }, 'CNI request failed');
      reply(failure.httpStatus, {
        code: failure.code,
        msg: failure.message,
        details: failure.details,
      });
    }
  }

  async #local(
    route: LocalRoutes[string],
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    let status = 200;
    let body: unknown;
    try {
      body = await route(JSON.parse(await readBody(req)));
    } catch (err) {
      status = (err as { httpStatus?: number }).httpStatus ?? 500;
      const message =
        err instanceof SyntaxError
          ? 'the request body is not JSON'
          : describeError(err).split('\n')[0];
      body = { msg: message };
      this.#options.logger.warn({ path: req.url, status, msg: message }, 'local request failed');
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  async #run(request: CniRequest): Promise<{ captured: boolean; workload: string }> {
    const key = `${request.namespace}/${request.name}`;
    this.#options.logger.info(
      { command: request.command, workload: key, containerId: request.containerId },
      'CNI request',
    );
    if (request.command === 'ADD') return this.#add(request, key);
    if (request.command === 'DEL') return this.#del(request, key);
    return this.#check(key);
  }

  async #add(request: CniRequest, key: string) {
    const workload = this.#workloadOf(request);
    const { revision } = await this.#registry((c) =>
      c.apply({ resources: [JSON.stringify(workload)], dryRun: false }),
    );
    const { sync, dataplane, captureTimeoutMs } = this.#options;
    const deadline = Date.now() + captureTimeoutMs;
    await until(() => sync.state.revision >= revision, deadline);
    const current = sync.state.get({
      kind: 'Workload',
      namespace: request.namespace,
      name: request.name,
    });
    if (!current || !sync.state.isEnrolled(current)) return { captured: false, workload: key };
    // The namespace too: an older pod of the same name may still be captured.
    const captured = await until(
      () =>
        dataplane
          .captured()
          .some(
            (w) => `${w.ref.namespace}/${w.ref.name}` === key && w.netns === current.spec.netns,
          ),
      deadline,
    );
    if (!captured) {
      throw new CniFailure(
        500,
        CNI.notCaptured,
        `workload ${key} is enrolled but was not captured within ${captureTimeoutMs} ms`,
        'see the meshd agent log for the reason; no traffic is let out uncaptured',
      );
    }
    return { captured: true, workload: key };
  }

  async #del(request: CniRequest, key: string) {
    try {
      await this.#registry((c) =>
        c.delete({
          ref: { kind: 'Workload', namespace: request.namespace, name: request.name },
          resourceVersion: '',
        }),
      );
    } catch (err) {
      if (!(err instanceof CniFailure && err.details === 'NOT_FOUND')) throw err;
    }
    return { captured: false, workload: key };
  }

  async #check(key: string) {
    const captured = this.#options.dataplane
      .captured()
      .find((w) => `${w.ref.namespace}/${w.ref.name}` === key);
    if (!captured) return { captured: false, workload: key };
    const status = await captureStatus(captured.netns);
    if (!status.v4)
      throw new CniFailure(
        500,
        CNI.notCaptured,
        `workload ${key}: capture rules are missing in ${captured.netns}`,
      );
    return { captured: true, workload: key };
  }

  #workloadOf(request: CniRequest): Workload {
    const candidate = {
      apiVersion: 'meshd.io/v1alpha1',
      kind: 'Workload',
      metadata: {
        name: request.name,
        namespace: request.namespace,
        labels: request.labels ?? {},
        annotations: { 'meshd.io/container-id': request.containerId },
      },
      spec: {
        node: this.#options.node,
        addresses: request.ips ?? [],
        serviceAccount: request.serviceAccount || 'default',
        netns: request.netns,
      },
    };
    const result = validateResource(candidate);
    if (!result.ok) {
      throw new CniFailure(
        400,
        CNI.invalidConfig,
        `workload ${request.namespace}/${request.name} is not valid`,
        result.errors.map((e) => `${e.path}: ${e.message}`).join('; '),
      );
    }
    return result.resource as Resource as Workload;
  }

  /** A registry call as this node, trying the servers in order. */
  async #registry<T>(fn: (c: RegistryClient) => Promise<T>): Promise<T> {
    let last: unknown;
    for (const server of this.#options.servers) {
      const client = new RegistryClient({
        ...this.#options.credentials(),
        server,
        timeoutMs: 10_000,
      });
      try {
        return await fn(client);
      } catch (err) {
        last = err;
        if (err instanceof ControlPlaneCallError && err.status === grpc.status.NOT_FOUND) {
          throw new CniFailure(404, CNI.notCaptured, err.message, 'NOT_FOUND');
        }
        if (!(err instanceof ControlPlaneCallError && err.status === grpc.status.UNAVAILABLE))
          break;
      } finally {
        client.close();
      }
    }
    const unavailable =
      last instanceof ControlPlaneCallError && last.status === grpc.status.UNAVAILABLE;
    throw new CniFailure(
      unavailable ? 503 : 500,
      unavailable ? CNI.tryAgainLater : CNI.registry,
      `the registry refused or could not be reached: ${describeError(last).split('\n')[0]}`,
    );
  }
}

function parseRequest(text: string): CniRequest {
  let body: Partial<CniRequest>;
  try {
    body = JSON.parse(text) as Partial<CniRequest>;
  } catch {
    throw new CniFailure(400, CNI.invalidConfig, 'the request body is not JSON');
  }
  if (body.command !== 'ADD' && body.command !== 'DEL' && body.command !== 'CHECK') {
    throw new CniFailure(400, CNI.invalidConfig, `unknown command ${JSON.stringify(body.command)}`);
  }
  if (!body.containerId || !body.namespace || !body.name) {
    throw new CniFailure(400, CNI.invalidConfig, 'containerId, namespace and name are required');
  }
  return body as CniRequest;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new CniFailure(413, CNI.invalidConfig, `request larger than ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** True when something accepts connections on the unix socket. */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function until(pred: () => boolean, deadline: number): Promise<boolean> {
  while (!pred()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}
