/**
 * The Registry gRPC service (daemon/proto/registry.proto). Apply validates every resource with
 * daemon/model, checks the caller may write it (admins anything; a node only Workloads of its
 * own node), and commits all of them in one store transaction with optimistic concurrency;
 * Watch streams the cache's snapshot and changes to agents.
 */
import { MeshdError } from '../../errors.js';
import type { Clock } from '../../identity/index.js';
import {
  formatFieldErrors,
  type Resource,
  resourceRef,
  validateResource,
} from '../../model/index.js';
import type {
  ApplyRequest,
  ApplyResponse,
  ApplyResult,
  DeleteRequest,
  DeleteResponse,
  GetRequest,
  GetResponse,
  grpc,
  ListNodesResponse,
  ListRequest,
  ListResponse,
  ResourceRef,
  WatchRequest,
  WatchResponse,
} from '../../proto/index.js';
import type { Logger } from '../../telemetry/index.js';
import type { CaSnapshot } from '../ca-state.js';
import { authenticate, type Caller } from '../caller.js';
import { badRequest, forbidden, toServiceError } from '../status.js';
import { ConflictError, type Store, type StoreOp } from '../store/index.js';
import type { RegistryCache } from './cache.js';
import { withVersion } from './cache.js';
import { keyOf, listPrefix, refOfKey, refText } from './keys.js';
import { NodePresence, type StreamPresence } from './presence.js';

export interface RegistryServiceDeps {
  store: Store;
  cache: RegistryCache;
  snapshot(): CaSnapshot;
  clock: Clock;
  logger: Logger;
  /** Most resources one Apply may carry. */
  maxApply?: number;
  /** Bytes queued for one slow Watch stream before it is cut (the agent resumes). */
  maxWatchBacklogBytes?: number;
  /** Which agents watch this server (made here when not given). */
  presence?: NodePresence;
}

const conflict = (message: string) => new MeshdError('MESHD_E_CONFLICT', message);
const notFound = (ref: ResourceRef) =>
  new MeshdError('MESHD_E_NOT_FOUND', `${refText(ref)} not found`);

/** Drops what the server owns from stored JSON and keeps identity fields across updates. */
function storedForm(
  resource: Resource,
  current: Record<string, unknown> | undefined,
  now: number,
): Record<string, unknown> {
  const { resourceVersion: _rv, ...metadata } = resource.metadata as Record<string, unknown>;
  const prev = (current?.metadata ?? {}) as Record<string, unknown>;
  return {
    ...resource,
    metadata: {
      ...metadata,
      uid: prev.uid ?? crypto.randomUUID(),
      creationTimestamp: prev.creationTimestamp ?? new Date(now).toISOString(),
    },
  };
}

/** Key order-independent equality of two JSON values. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(
      ([, v]) => v !== undefined,
    );
    return `{${entries
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

function authorizeWrite(
  caller: Caller,
  ref: ResourceRef,
  resource: Record<string, unknown> | undefined,
): void {
  if (caller.kind.kind === 'admin') return;
  if (caller.kind.kind === 'node' && ref.kind === 'Workload') {
    const node = (resource?.spec as { node?: string } | undefined)?.node;
    if (node === caller.kind.node) return;
    throw forbidden(
      `node ${caller.kind.node} may only write Workloads of its own node; ${refText(ref)} is on ${node ?? 'no node'}`,
    );
  }
  throw forbidden(
    `${caller.svid.spiffeId} may not change ${refText(ref)} (admins change resources; nodes only their own Workloads)`,
  );
}

function parseVersion(ref: ResourceRef, value: unknown): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string' || !/^\d+$/.test(value)) {
    throw badRequest(
      `${refText(ref)}: metadata.resourceVersion must be a version string from the server, got ${JSON.stringify(value)}`,
    );
  }
  return Number(value);
}

export function registryHandlers(deps: RegistryServiceDeps): grpc.UntypedServiceImplementation {
  const { store, cache, logger, clock } = deps;
  const maxApply = deps.maxApply ?? 5000;
  const maxBacklog = deps.maxWatchBacklogBytes ?? 64 * 1024 * 1024;
  const presence = deps.presence ?? new NodePresence(() => clock.now());
  const caller = (
    call: { getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } },
    method: string,
  ) => authenticate(call, method, deps.snapshot(), clock.now());

  function unary<Req, Res>(
    method: string,
    fn: (req: Req, who: Caller) => Promise<Res>,
  ): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      Promise.resolve()
        .then(() => fn(call.request, caller(call, method)))
        .then(
          (res) => callback(null, res),
          (err: unknown) => {
            logger.warn(
              {
                method,
                peer: call.getPeer(),
                err: err instanceof Error ? err.message : String(err),
              },
              'registry request refused',
            );
            callback(toServiceError(err));
          },
        );
    };
  }

  async function apply(req: ApplyRequest, who: Caller): Promise<ApplyResponse> {
    if (req.resources.length === 0) throw badRequest('Apply needs at least one resource');
    if (req.resources.length > maxApply)
      throw badRequest(`Apply takes at most ${maxApply} resources, got ${req.resources.length}`);
    const resources = validateAll(req.resources);
    const seen = new Set<string>();
    const ops: StoreOp[] = [];
    const results: ApplyResult[] = [];
    for (const resource of resources) {
      const ref = resourceRef(resource);
      const key = keyOf(ref);
      if (seen.has(key)) throw badRequest(`${refText(ref)} appears twice in one Apply`);
      seen.add(key);
      authorizeWrite(who, ref, resource as unknown as Record<string, unknown>);
      const current = await store.get(key);
      const currentObject = current
        ? (JSON.parse(current.value) as Record<string, unknown>)
        : undefined;
      if (currentObject) authorizeWrite(who, ref, currentObject);
      const expected = parseVersion(
        ref,
        (resource.metadata as { resourceVersion?: unknown }).resourceVersion,
      );
      if (expected !== undefined && expected !== (current?.modRevision ?? 0)) {
        throw conflict(
          `${refText(ref)}: resourceVersion ${expected} is stale (the current version is ${current?.modRevision ?? 'none: it does not exist'}); get it again and re-apply`,
        );
      }
      const value = storedForm(resource, currentObject, clock.now());
      if (currentObject && canonical(value) === canonical(currentObject)) {
        results.push({ ref, action: 'unchanged', resourceVersion: String(current?.modRevision) });
        continue;
      }
      ops.push({
        type: 'put',
        key,
        value: JSON.stringify(value),
        expectModRevision: current?.modRevision ?? 0,
      });
      results.push({ ref, action: current ? 'configured' : 'created', resourceVersion: '' });
    }
    if (req.dryRun || ops.length === 0) return { results, revision: await store.revision() };
    const revision = await commitOrConflict(ops);
    for (const r of results) if (r.action !== 'unchanged') r.resourceVersion = String(revision);
    logger.info({ by: who.svid.spiffeId, changed: ops.length, revision }, 'resources applied');
    return { results, revision };
  }

  /** A store-level conflict (a concurrent change between our read and our commit), named by resource. */
  async function commitOrConflict(ops: StoreOp[]): Promise<number> {
    try {
      return await store.commit(ops);
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      throw conflict(
        `${refText(refOfKey(err.key))} changed while this request ran (version ${err.actual}); nothing was applied, try again`,
      );
    }
  }

  function validateAll(texts: string[]): Resource[] {
    const resources: Resource[] = [];
    const problems: string[] = [];
    texts.forEach((text, i) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        problems.push(`resource ${i + 1}: not JSON`);
        return;
      }
      const result = validateResource(parsed);
      if (result.ok) resources.push(result.resource);
      else problems.push(`resource ${i + 1}: ${formatFieldErrors(result.errors)}`);
    });
    if (problems.length) {
      throw new MeshdError(
        'MESHD_E_INVALID_RESOURCE',
        `nothing was applied: ${problems.join('; ')}`,
      );
    }
    return resources;
  }

  async function get(req: GetRequest): Promise<GetResponse> {
    const item = await store.get(keyOf(req.ref));
    if (!item) throw notFound(req.ref);
    return { resource: withVersion(item.value, item.modRevision).json };
  }

  async function list(req: ListRequest): Promise<ListResponse> {
    const { items, revision } = await store.list(listPrefix(req.kind, req.namespace));
    return { resources: items.map((i) => withVersion(i.value, i.modRevision).json), revision };
  }

  async function remove(req: DeleteRequest, who: Caller): Promise<DeleteResponse> {
    const key = keyOf(req.ref);
    const current = await store.get(key);
    if (!current) throw notFound(req.ref);
    authorizeWrite(who, req.ref, JSON.parse(current.value) as Record<string, unknown>);
    const expected = parseVersion(req.ref, req.resourceVersion) ?? current.modRevision;
    const revision = await commitOrConflict([{ type: 'delete', key, expectModRevision: expected }]);
    logger.info({ by: who.svid.spiffeId, ref: refText(req.ref), revision }, 'resource deleted');
    return { revision };
  }

  async function listNodes(_req: unknown, who: Caller): Promise<ListNodesResponse> {
    if (who.kind.kind !== 'admin')
      throw forbidden(`${who.svid.spiffeId} may not list nodes (admins only)`);
    return {
      nodes: presence.list(cache.workloadCounts()),
      revision: cache.revision,
      serverTimeUnixMs: clock.now(),
    };
  }

  const watch: grpc.handleServerStreamingCall<WatchRequest, WatchResponse> = (call) => {
    let who: Caller;
    try {
      who = caller(call, 'Watch');
    } catch (err) {
      call.emit('error', toServiceError(err));
      return;
    }
    const log = logger.child({ watcher: who.svid.spiffeId, node: call.request.node });
    const seen: StreamPresence | undefined =
      who.kind.kind === 'node'
        ? presence.started({
            node: who.kind.node,
            peer: call.getPeer(),
            agentTimeMs: Number(call.request.sentAtUnixMs ?? 0),
            version: call.request.version ?? '',
          })
        : undefined;
    const send = (message: WatchResponse) => {
      call.write(message);
      seen?.sent(message.revision);
      if (call.writableLength > maxBacklog) {
        log.warn(
          { backlog: call.writableLength },
          'watcher too slow; ending its stream (it will resume)',
        );
        call.emit('error', { code: 8, details: 'watch backlog exceeded; reconnect and resume' });
        stop();
      }
    };
    const snapshot = () =>
      send({
        type: 'snapshot',
        revision: cache.revision,
        resources: cache.all().map((r) => r.json),
        changes: [],
      });
    const resume = cache.since(call.request.fromRevision);
    if (call.request.fromRevision > 0 && resume) {
      for (const batch of resume)
        send({ type: 'changes', revision: batch.revision, resources: [], changes: batch.changes });
    } else {
      snapshot();
    }
    const unsubscribe = cache.subscribe((event) => {
      if (event.type === 'reset') snapshot();
      else
        send({
          type: 'changes',
          revision: event.batch.revision,
          resources: [],
          changes: event.batch.changes,
        });
    });
    const stop = () => {
      unsubscribe();
      seen?.ended();
    };
    call.on('cancelled', stop);
    call.on('close', stop);
    call.on('error', stop);
    log.info(
      {
        from: call.request.fromRevision,
        resumed: Boolean(call.request.fromRevision > 0 && resume),
      },
      'watch started',
    );
  };

  return {
    Apply: unary('Apply', apply),
    Get: unary('Get', (req: GetRequest) => get(req)),
    List: unary('List', (req: ListRequest) => list(req)),
    Delete: unary('Delete', remove),
    Watch: watch,
    ListNodes: unary('ListNodes', listNodes),
  };
}
