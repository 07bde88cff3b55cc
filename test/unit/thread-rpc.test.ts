// Calls between the agent's main thread and its data-path threads (daemon/agent/thread-rpc.ts),
// over a real MessageChannel.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { ThreadRpc, ThreadRpcError } from '../../daemon/agent/thread-rpc.js';

function pair(
  handlers: Record<string, (arg: never) => unknown>,
  onNoticeError?: (method: string, err: unknown) => void,
) {
  const { port1, port2 } = new MessageChannel();
  const caller = new ThreadRpc(port1, {}, 'data-path thread 1');
  const callee = new ThreadRpc(port2, handlers, 'the main thread', onNoticeError);
  return {
    caller,
    callee,
    close() {
      port1.close();
      port2.close();
    },
  };
}

test('a call gets its handler’s value, sync or async, with the argument cloned across', async () => {
  const p = pair({
    double: (n: number) => n * 2,
    later: async (s: { a: string[] }) => ({ echoed: s.a.join('+') }),
  });
  try {
    assert.equal(await p.caller.call('double', 21, 1_000), 42);
    assert.deepEqual(await p.caller.call('later', { a: ['x', 'y'] }, 1_000), { echoed: 'x+y' });
  } finally {
    p.close();
  }
});

test('an error crosses with its message and code; an unknown method is an error too', async () => {
  const p = pair({
    fail: () => {
      throw Object.assign(new Error('no certificate for spiffe://x'), { code: 'MESHD_E_CERT' });
    },
  });
  try {
    await assert.rejects(p.caller.call('fail', null, 1_000), (err: unknown) => {
      assert.ok(err instanceof ThreadRpcError);
      assert.equal(err.message, 'no certificate for spiffe://x');
      assert.equal(err.code, 'MESHD_E_CERT');
      return true;
    });
    await assert.rejects(p.caller.call('nothing', null, 1_000), /unknown method nothing/);
  } finally {
    p.close();
  }
});

test('a call without an answer fails after its timeout, naming the other side and the method', async () => {
  const p = pair({ hang: () => new Promise(() => {}) });
  try {
    const started = Date.now();
    await assert.rejects(
      p.caller.call('hang', null, 100),
      /data-path thread 1: no answer to hang within 100 ms/,
    );
    assert.ok(Date.now() - started >= 95);
  } finally {
    p.close();
  }
});

test('close() fails the calls still waiting, and later calls at once; notices stop', async () => {
  const seen: string[] = [];
  const p = pair({ hang: () => new Promise(() => {}), note: (s: string) => seen.push(s) });
  try {
    p.caller.notify('note', 'first');
    const waiting = p.caller.call('hang', null, 10_000);
    await new Promise((r) => setTimeout(r, 20));
    p.caller.close('it exited (code 1)');
    await assert.rejects(waiting, /data-path thread 1: it exited \(code 1\)/);
    await assert.rejects(p.caller.call('hang', null, 10_000), /it exited/);
    p.caller.notify('note', 'second');
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, ['first']);
  } finally {
    p.close();
  }
});

test('a notice whose handler fails, or that nobody handles, is reported on the receiving side', async () => {
  const failures: string[] = [];
  const p = pair(
    {
      bad: () => {
        throw new Error('state event rejected');
      },
    },
    (method, err) => failures.push(`${method}: ${(err as Error).message}`),
  );
  try {
    p.caller.notify('bad', null);
    p.caller.notify('missing', null);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(failures, ['bad: state event rejected', 'missing: unknown notice missing']);
  } finally {
    p.close();
  }
});
