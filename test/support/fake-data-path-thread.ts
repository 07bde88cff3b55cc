/**
 * A stand-in for daemon/agent/thread-main.ts in unit tests of DataPathThreads, chosen by
 * FAKE_THREAD_MODE (workers see a copy of the environment when they start):
 *   exit-after-ready  answers ready, then exits with code 3 (a thread that dies)
 *   exit-before-ready exits with code 4 before answering anything
 *   silent            never answers anything
 *   mute-collect      answers ready, never answers collect
 *   mirror            answers ready; collect returns what it was sent (snapshot, events) and
 *                     a certificate it asked the main thread for
 */
import { parentPort } from 'node:worker_threads';
import { ThreadRpc } from '../../daemon/agent/thread-rpc.js';

const mode = process.env.FAKE_THREAD_MODE;
const port = parentPort;
if (!port) throw new Error('run me as a worker');

if (mode === 'exit-before-ready') {
  process.exit(4);
} else if (mode === 'silent') {
  setInterval(() => {}, 1_000);
} else {
  const seen: unknown[] = [];
  let rpc: ThreadRpc | undefined;
  rpc = new ThreadRpc(
    port,
    {
      ready: () => {
        if (mode === 'exit-after-ready') setTimeout(() => process.exit(3), 50);
        return true;
      },
      snapshot: (s: unknown) => seen.push({ snapshot: s }),
      event: (e: unknown) => seen.push({ event: e }),
      trim: () => seen.push({ trim: true }),
      collect: async () => {
        if (mode === 'mute-collect') return new Promise(() => {});
        const certificate = await rpc?.call(
          'certificate',
          'spiffe://cluster.local/ns/a/sa/b',
          1_000,
        );
        return { seen, certificate, metrics: [], connections: [], pool: {} };
      },
      stop: () => {
        setImmediate(() => port.close());
        return 0;
      },
    },
    'the main thread',
  );
}
