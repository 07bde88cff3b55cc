import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadAgentConfig } from '../../daemon/config.js';

test('MESHD_AGENT_TURBOFAN: off by default, on-ready on request, anything else refused', () => {
  assert.equal(loadAgentConfig({ MESHD_NODE_NAME: 'n1' }).turbofan, 'off');
  assert.equal(
    loadAgentConfig({ MESHD_NODE_NAME: 'n1', MESHD_AGENT_TURBOFAN: 'on-ready' }).turbofan,
    'on-ready',
  );
  assert.throws(
    () => loadAgentConfig({ MESHD_NODE_NAME: 'n1', MESHD_AGENT_TURBOFAN: 'on' }),
    (err: ConfigError) =>
      err instanceof ConfigError &&
      err.message === 'MESHD_AGENT_TURBOFAN="on": must be one of off, on-ready',
  );
});

/**
 * The mode relies on V8 honouring --turbofan set at run time in a process started with
 * --no-opt (bin/meshd's agent flags). A hot function in a child process started that way must
 * end up compiled by Turbofan after enableOptimizingCompiler('on-ready'), and not with 'off'.
 */
function turbofannedInChild(mode: 'off' | 'on-ready'): boolean {
  const module = fileURLToPath(
    new URL('../../daemon/agent/optimizing-compiler.js', import.meta.url),
  );
  const script = `
    const { enableOptimizingCompiler } = await import(${JSON.stringify(module)});
    enableOptimizingCompiler(${JSON.stringify(mode)}, { info() {} });
    function hot(values) { let sum = 0; for (const v of values) sum += v * 2; return sum; }
    const values = Array.from({ length: 1000 }, (_, i) => i);
    for (let i = 0; i < 30000; i++) hot(values);
    const TURBOFANNED = 1 << 6; // V8's OptimizationStatus::kTurboFanned
    console.log((%GetOptimizationStatus(hot) & TURBOFANNED) !== 0);
  `;
  const out = execFileSync(
    process.execPath,
    [
      '--no-opt',
      '--no-concurrent-recompilation',
      '--allow-natives-syntax',
      '--input-type=module',
      '-e',
      script,
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  return out.trim() === 'true';
}

test('on-ready makes V8 compile hot code with Turbofan in an agent started with --no-opt', () => {
  assert.equal(turbofannedInChild('off'), false, 'off: no Turbofan code');
  assert.equal(turbofannedInChild('on-ready'), true, 'on-ready: the hot function is Turbofan code');
});
