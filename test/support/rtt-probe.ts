/**
 * Meshed requests as an application makes them: COUNT new connections to HOST:PORT (an echo
 * server), one after another, each writing one byte, reading it back and closing; prints
 * {"ms": [...], "failed": F} with each request's time.
 *   rtt-probe HOST PORT COUNT
 */
import { connect } from 'node:net';

const [host = '', port = '', count = '100'] = process.argv.slice(2);

function once(): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const s = connect({ host, port: Number(port) }, () => s.write('x'));
    const timer = setTimeout(() => s.destroy(new Error('no answer within 5 s')), 5_000);
    s.once('data', () => {
      clearTimeout(timer);
      s.end();
      resolve(performance.now() - started);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const ms: number[] = [];
let failed = 0;
for (let i = 0; i < Number(count); i++) {
  try {
    ms.push(Math.round((await once()) * 10) / 10);
  } catch {
    failed++;
  }
}
console.log(JSON.stringify({ ms, failed }));
