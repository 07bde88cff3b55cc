// The --store URL forms (docs/store.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStoreUrl, StoreError } from '../../daemon/server/store/index.js';

test('file store URLs: file:// and bare paths', () => {
  assert.deepEqual(parseStoreUrl('file:///var/lib/meshd/server/store'), {
    kind: 'file',
    dir: '/var/lib/meshd/server/store',
  });
  assert.deepEqual(parseStoreUrl('/srv/store'), { kind: 'file', dir: '/srv/store' });
  assert.deepEqual(parseStoreUrl('data/store', '/home/op'), {
    kind: 'file',
    dir: '/home/op/data/store',
  });
  assert.deepEqual(parseStoreUrl('file:///a%20b'), { kind: 'file', dir: '/a b' });
});

test('etcd URLs: endpoints, default port, prefix', () => {
  assert.deepEqual(parseStoreUrl('etcd://127.0.0.1:2379'), {
    kind: 'etcd',
    endpoints: [{ host: '127.0.0.1', port: 2379 }],
    prefix: '/meshd/',
  });
  assert.deepEqual(parseStoreUrl('etcd://e1:12379,e2,[fd00::3]:2379/mesh/prod'), {
    kind: 'etcd',
    endpoints: [
      { host: 'e1', port: 12379 },
      { host: 'e2', port: 2379 },
      { host: 'fd00::3', port: 2379 },
    ],
    prefix: '/mesh/prod/',
  });
  assert.equal((parseStoreUrl('etcd://h/x/') as { prefix: string }).prefix, '/x/');
  assert.equal((parseStoreUrl('etcd://h/') as { prefix: string }).prefix, '/meshd/');
});

test('bad store URLs are refused with MESHD_E_STORE and the accepted forms', () => {
  for (const url of [
    '',
    'etcd://',
    'etcd://h:0',
    'etcd://h:99999',
    'etcd://::1:2379',
    'http://x/',
    'etcd://h/p?x=1',
    'file://host/x',
  ]) {
    assert.throws(
      () => parseStoreUrl(url),
      (err: StoreError) => {
        assert.ok(err instanceof StoreError, url);
        assert.equal(err.code, 'MESHD_E_STORE');
        assert.match(err.message, /etcd:\/\/host:port/);
        return true;
      },
      url,
    );
  }
});
