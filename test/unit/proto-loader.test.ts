// daemon/proto/loader.ts: service definitions with proto-loader's conversions, from protobufjs.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { packageRoot } from '../../daemon/paths.js';
import { loadServices, registryService } from '../../daemon/proto/index.js';

const etcd = () =>
  loadServices(join(packageRoot(), 'daemon', 'server', 'store', 'etcd.proto'), 'etcdserverpb');

function method(service: grpc.ServiceClientConstructor, name: string) {
  const m = service.service[name];
  assert.ok(m, `method ${name}`);
  return m;
}

test('paths, streaming flags and lowerCamel names as proto-loader makes them', () => {
  const { KV, Watch } = etcd();
  assert.ok(KV && Watch);
  assert.equal(method(KV, 'Range').path, '/etcdserverpb.KV/Range');
  assert.equal(method(KV, 'Range').originalName, 'range');
  assert.deepEqual(
    [method(Watch, 'Watch').requestStream, method(Watch, 'Watch').responseStream],
    [true, true],
  );
  const watch = method(registryService(), 'Watch');
  assert.equal(watch.path, '/meshd.v1alpha1.Registry/Watch');
  assert.deepEqual([watch.requestStream, watch.responseStream], [false, true]);
  assert.equal(method(registryService(), 'ListNodes').originalName, 'listNodes');
  // grpc-js clients get both names
  assert.equal(typeof registryService().prototype.listNodes, 'function');
  assert.equal(typeof registryService().prototype.ListNodes, 'function');
});

test('messages: camelCase fields, int64 as number, enums as strings, bytes as Buffer, defaults, oneofs', () => {
  const { Watch, KV } = etcd();
  assert.ok(Watch && KV);
  const response = method(Watch, 'Watch');
  const bytes = response.responseSerialize({
    header: { revision: 2 ** 40 },
    watchId: 7,
    events: [{ type: 'DELETE', kv: { key: Buffer.from('k'), modRevision: 12 } }],
  });
  const decoded = response.responseDeserialize(bytes) as {
    header: { revision: number; raftTerm: number };
    watchId: number;
    canceled: boolean;
    cancelReason: string;
    events: { type: string; kv: { key: Buffer; modRevision: number; value: Buffer } }[];
  };
  assert.equal(decoded.header.revision, 2 ** 40);
  assert.equal(decoded.header.raftTerm, 0, 'defaults filled in');
  assert.equal(decoded.watchId, 7);
  assert.equal(decoded.canceled, false);
  assert.equal(decoded.cancelReason, '');
  assert.equal(decoded.events[0]?.type, 'DELETE');
  assert.ok(Buffer.isBuffer(decoded.events[0]?.kv.key));
  assert.equal(decoded.events[0]?.kv.key.toString(), 'k');
  assert.equal(decoded.events[0]?.kv.modRevision, 12);
  const txn = method(KV, 'Txn');
  const op = txn.responseDeserialize(
    txn.responseSerialize({ succeeded: true, responses: [{ responsePut: { header: {} } }] }),
  ) as { responses: { response: string; responsePut: object }[] };
  assert.equal(op.responses[0]?.response, 'responsePut', 'oneof name given');
  assert.throws(() => txn.requestSerialize([] as unknown as object), /array/);
});

test('a package that is not in the file is an error naming both', () => {
  assert.throws(
    () => loadServices(join(packageRoot(), 'daemon', 'proto', 'registry.proto'), 'nope.v1'),
    /package nope\.v1 not found in .*registry\.proto/,
  );
});
