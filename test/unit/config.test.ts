import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConfigError,
  loadAgentConfig,
  loadServerConfig,
  parse,
  readConfig,
} from '../../daemon/config.js';
import type { MeshdError } from '../../daemon/errors.js';

test('agent config: defaults, frozen, node name required', () => {
  const config = loadAgentConfig({ MESHD_NODE_NAME: 'node-1' });
  assert.equal(config.nodeName, 'node-1');
  assert.equal(config.adminPort, 15000);
  assert.equal(config.readinessPort, 15021);
  assert.ok(Object.isFrozen(config));
  assert.throws(
    () => loadAgentConfig({}),
    (err: ConfigError) => {
      assert.equal(err.code, 'MESHD_E_CONFIG');
      assert.equal(err.variable, 'MESHD_NODE_NAME');
      assert.match(err.message, /^MESHD_NODE_NAME=unset: required, not set$/);
      return true;
    },
  );
});

test('a bad value names the variable, the value and the reason', () => {
  assert.throws(
    () => loadServerConfig({ MESHD_GRPC_PORT: '70000' }),
    (err: ConfigError) =>
      err instanceof ConfigError &&
      err.variable === 'MESHD_GRPC_PORT' &&
      err.value === '70000' &&
      err.message === 'MESHD_GRPC_PORT="70000": must be between 0 and 65535',
  );
});

test('all bad variables are reported at once', () => {
  assert.throws(
    () => loadAgentConfig({ MESHD_NODE_NAME: 'Bad_Name', MESHD_LOG_LEVEL: 'loud' }),
    (err: MeshdError) => {
      assert.equal(err.code, 'MESHD_E_CONFIG');
      assert.match(err.message, /MESHD_NODE_NAME="Bad_Name": must be a DNS label/);
      assert.match(err.message, /MESHD_LOG_LEVEL="loud": must be one of fatal, error/);
      return true;
    },
  );
});

test('parsers', () => {
  assert.equal(parse.durationMs('30s'), 30_000);
  assert.equal(parse.durationMs('24h'), 86_400_000);
  assert.equal(parse.durationMs('250'), 250);
  assert.throws(() => parse.durationMs('1.5s'), /not a duration/);
  assert.equal(parse.bool('yes'), true);
  assert.equal(parse.bool('false'), false);
  assert.throws(() => parse.bool('maybe'), /not a boolean/);
  assert.throws(() => parse.port('80x'), /not an integer/);
  const spec = { mode: { env: 'MODE', parse: parse.oneOf('a', 'b'), default: 'a' as 'a' | 'b' } };
  assert.equal(readConfig(spec, { MESHD_MODE: '' }).mode, 'a', 'empty means unset');
});
