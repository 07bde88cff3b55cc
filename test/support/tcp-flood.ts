/**
 * A misbehaving client for log-flood tests: `HOST PORT MAX MAX_MS CONCURRENCY [PAYLOAD]`. Opens
 * short connections, CONCURRENCY at a time, until MAX were opened or MAX_MS have passed; writes
 * PAYLOAD (or nothing) and waits for the other side to close or reset each one (or 20 s). Prints one JSON
 * line: {opened, connected, errors, timedOut, ms}. Against a captured destination every
 * connect reaches the agent's listener, also the ones in `errors` as ECONNRESET: the agent's
 * reset came before Node reported the connect.
 */
import { connect } from 'node:net';

const [host = '', port = '0', max = '0', maxMs = '0', concurrency = '1', payload = ''] =
  process.argv.slice(2);
const limit = Number(max);
const deadline = Date.now() + Number(maxMs);
const started = Date.now();
const PER_CONNECTION_TIMEOUT_MS = 20_000;

let opened = 0;
let connected = 0;
let timedOut = 0;
/** Connects that failed, by error code. */
const errors: Record<string, number> = {};

/** One connection after another until the count or the time is used up. */
async function worker(): Promise<void> {
  while (opened < limit && Date.now() < deadline) {
    opened += 1;
    await new Promise<void>((resolve) => {
      const s = connect({ host, port: Number(port) });
      let up = false;
      const timer = setTimeout(() => {
        timedOut += 1;
        s.destroy();
      }, PER_CONNECTION_TIMEOUT_MS);
      s.once('connect', () => {
        up = true;
        connected += 1;
        if (payload) s.write(payload);
      });
      s.on('error', (err: NodeJS.ErrnoException) => {
        if (up) return;
        const code = err.code ?? err.message;
        errors[code] = (errors[code] ?? 0) + 1;
      });
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

await Promise.all(Array.from({ length: Number(concurrency) }, worker));
console.log(JSON.stringify({ opened, connected, errors, timedOut, ms: Date.now() - started }));
