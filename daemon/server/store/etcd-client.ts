/**
 * A small client of etcd's v3 gRPC API (KV.Range, KV.Txn, KV.Compact, Watch.Watch) over
 * @grpc/grpc-js, with etcd.proto beside this file (loaded by daemon/proto/loader.ts). Every unary call has
 * a deadline; the channel pings an idle connection so a dead etcd is noticed by watch streams.
 * Plaintext only for now (`etcd://`).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { packageRoot } from '../../paths.js';
import { loadServices as loadProtoServices } from '../../proto/index.js';
import { StoreError } from './errors.js';
import type { EtcdEndpoint } from './url.js';

export interface KeyValue {
  key: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Buffer;
}

export interface ResponseHeader {
  revision: number;
}

export interface RangeRequest {
  key: Buffer;
  rangeEnd?: Buffer;
  limit?: number;
  revision?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface Compare {
  result: 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL';
  target: 'VERSION' | 'CREATE' | 'MOD' | 'VALUE' | 'LEASE';
  key: Buffer;
  modRevision?: number;
}

export type RequestOp =
  | { requestRange: RangeRequest }
  | { requestPut: { key: Buffer; value: Buffer } }
  | { requestDeleteRange: { key: Buffer } };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: { responseRange?: RangeResponse; response?: string }[];
}

export interface WatchEvent {
  type: 'PUT' | 'DELETE';
  kv: KeyValue;
  prevKv: KeyValue | null;
}

export interface WatchRequest {
  createRequest?: {
    key: Buffer;
    rangeEnd: Buffer;
    startRevision: number;
    prevKv: boolean;
    progressNotify?: boolean;
  };
  cancelRequest?: { watchId: number };
}

export interface WatchResponse {
  header: ResponseHeader | null;
  watchId: number;
  created: boolean;
  canceled: boolean;
  compactRevision: number;
  cancelReason: string;
  events: WatchEvent[];
}

export type WatchStream = grpc.ClientDuplexStream<WatchRequest, WatchResponse>;

let services:
  | { KV: grpc.ServiceClientConstructor; Watch: grpc.ServiceClientConstructor }
  | undefined;

function loadServices() {
  if (!services) {
    const loaded = loadProtoServices(
      join(packageRoot(), 'daemon', 'server', 'store', 'etcd.proto'),
      'etcdserverpb',
    );
    const { KV, Watch } = loaded;
    if (!KV || !Watch) throw new Error('etcd.proto: services KV and Watch not found');
    services = { KV, Watch };
  }
  return services;
}

/** The gRPC target for the endpoints (already resolved to IP literals when there are several). */
export function grpcTarget(endpoints: readonly EtcdEndpoint[]): string {
  if (endpoints.length === 1) {
    const e = endpoints[0]!;
    return isIPv6(e.host) ? `ipv6:[${e.host}]:${e.port}` : `dns:${e.host}:${e.port}`;
  }
  if (endpoints.every((e) => isIPv4(e.host))) {
    return `ipv4:${endpoints.map((e) => `${e.host}:${e.port}`).join(',')}`;
  }
  if (endpoints.every((e) => isIPv6(e.host))) {
    return `ipv6:${endpoints.map((e) => `[${e.host}]:${e.port}`).join(',')}`;
  }
  throw new StoreError(
    `etcd endpoints ${endpoints.map((e) => `${e.host}:${e.port}`).join(',')} mix IPv4 and IPv6`,
    { hint: 'list endpoints of one address family' },
  );
}

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Ping a connection that carries streams, so a vanished etcd fails the watches. etcd refuses
  // pings more often than every 5 s (--grpc-keepalive-min-time) and pings without streams.
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 0,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 5_000,
  'grpc.lb_policy_name': 'pick_first',
};

type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

export function statusName(code: number): string {
  return (grpc.status as unknown as Record<number, string>)[code] ?? String(code);
}

export class EtcdClient {
  readonly target: string;
  readonly #kv: grpc.Client;
  readonly #watch: grpc.Client;
  readonly #timeoutMs: number;

  constructor(endpoints: readonly EtcdEndpoint[], timeoutMs: number) {
    const { KV, Watch } = loadServices();
    this.target = grpcTarget(endpoints);
    this.#timeoutMs = timeoutMs;
    const creds = grpc.credentials.createInsecure();
    this.#kv = new KV(this.target, creds, CHANNEL_OPTIONS);
    // Same options and target: grpc-js shares one subchannel (one connection) between them.
    this.#watch = new Watch(this.target, creds, CHANNEL_OPTIONS);
  }

  /** Resolves when the channel is connected; rejects after timeoutMs. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#kv.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve()));
    });
  }

  #unary<Req, Res>(method: string, request: Req): Promise<Res> {
    const fn = (this.#kv as unknown as Record<string, Unary<Req, Res>>)[method]!.bind(this.#kv);
    return new Promise((resolve, reject) => {
      fn(request, new grpc.Metadata(), { deadline: Date.now() + this.#timeoutMs }, (err, res) => {
        if (err) reject(err);
        else resolve(res as Res);
      });
    });
  }

  range(request: RangeRequest): Promise<RangeResponse> {
    return this.#unary('Range', request);
  }

  txn(request: TxnRequest): Promise<TxnResponse> {
    return this.#unary('Txn', request);
  }

  compact(revision: number, physical = true): Promise<{ header: ResponseHeader }> {
    return this.#unary('Compact', { revision, physical });
  }

  /** A new Watch stream; `hasleader` makes an etcd member that lost its leader end it. */
  watchStream(): WatchStream {
    const metadata = new grpc.Metadata();
    metadata.set('hasleader', 'true');
    const open = (
      this.#watch as unknown as Record<string, (m: grpc.Metadata) => WatchStream>
    ).Watch!.bind(this.#watch);
    return open(metadata);
  }

  close(): void {
    this.#kv.close();
    this.#watch.close();
  }
}
