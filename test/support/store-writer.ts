/**
 * The crash test's writer: opens the file store in argv[2] and commits a stream of applies
 * (several in flight at once, some of two keys, with small WAL thresholds so snapshots and
 * truncations happen mid-stream), printing `ack <revision> <key> <seq>` for each key of a
 * commit after commit() resolved. The test SIGKILLs it at a random moment.
 *
 *   node dist/test/support/store-writer.js DIR ROUND [IN_FLIGHT]
 */
import { openStore } from '../../daemon/server/store/index.js';

const [dir, round = '0', inFlightText = '4'] = process.argv.slice(2);
if (!dir) {
  process.stderr.write('usage: store-writer DIR ROUND [IN_FLIGHT]\n');
  process.exit(2);
}
const store = await openStore(dir, { walMaxRecords: 97, walMaxBytes: 256 * 1024 });
process.stdout.write(`ready ${await store.revision()}\n`);

let seq = 0;
const MAX = 100_000; // bounded even if nobody kills it
async function writer(lane: number): Promise<void> {
  while (seq < MAX) {
    const n = seq++;
    // 40 keys per round, overwritten again and again; every 5th commit writes two keys.
    const keys = [`r${round}/k${n % 40}`];
    if (n % 5 === 0) keys.push(`r${round}/pair${n % 7}`);
    const value = JSON.stringify({ seq: n, lane, pad: 'x'.repeat(n % 300) });
    const revision = await store.commit(keys.map((key) => ({ type: 'put', key, value })));
    process.stdout.write(keys.map((key) => `ack ${revision} ${key} ${n}\n`).join(''));
  }
}
await Promise.all(Array.from({ length: Number(inFlightText) }, (_, lane) => writer(lane)));
await store.close();
