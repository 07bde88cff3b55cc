import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadServerConfig, parse, readConfig } from '../../daemon/config.js';

test('server config: CA directory, certificate lifetimes, optional workloads file', () => {
  const config = loadServerConfig({});
  assert.equal(config.caDir, '/etc/meshd/ca');
  assert.equal(config.maxCertTtlMs, 86_400_000);
  assert.equal(config.nodeCertTtlMs, 86_400_000);
  assert.equal(config.workloadsFile, undefined, 'unset optional value');
  assert.ok(Object.isFrozen(config));
  const set = loadServerConfig({
    MESHD_CA_DIR: '/srv/ca',
    MESHD_CERT_MAX_TTL: '1h',
    MESHD_NODE_CERT_TTL: '48h',
    MESHD_WORKLOADS_FILE: '/srv/workloads.json',
  });
  assert.deepEqual(
    [set.caDir, set.maxCertTtlMs, set.nodeCertTtlMs, set.workloadsFile],
    ['/srv/ca', 3_600_000, 172_800_000, '/srv/workloads.json'],
  );
  assert.throws(
    () => loadServerConfig({ MESHD_CERT_MAX_TTL: '1s' }),
    (err: ConfigError) =>
      err instanceof ConfigError &&
      err.message === 'MESHD_CERT_MAX_TTL="1s": must be between 5m and 2160h',
  );
});

test('optional fields: empty means unset, a bad value is still an error', () => {
  const spec = { port: { env: 'X_PORT', parse: parse.port, optional: true as const } };
  assert.equal(readConfig(spec, { MESHD_X_PORT: '' }).port, undefined);
  assert.equal(readConfig(spec, { MESHD_X_PORT: '80' }).port, 80);
  assert.throws(() => readConfig(spec, { MESHD_X_PORT: 'x' }), /MESHD_X_PORT="x": not an integer/);
});
