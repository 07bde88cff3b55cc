/**
 * Handshakes that never finish: N TCP connections to HOST:PORT, each sending the first three
 * bytes of a TLS record and nothing more, held for SECONDS, then closed. Prints
 * {"held": K, "refused": R} once every connection is either open or refused, and
 * {"done": true} after closing them.
 *   hold-handshakes HOST PORT N SECONDS
 */
import { connect, type Socket } from 'node:net';

const [host = '', port = '', n = '100', seconds = '10'] = process.argv.slice(2);
const out = (v: unknown) => console.log(JSON.stringify(v));
const total = Number(n);
const sockets: Socket[] = [];
let held = 0;
let refused = 0;
let settled = 0;
const settle = () => {
  if (++settled === total) out({ held, refused });
};
// Opened a few hundred at a time: the attacker is many at once, not a SYN flood.
async function openAll() {
  for (let i = 0; i < total; i += 200) {
    const batch = Array.from({ length: Math.min(200, total - i) }, () => {
      return new Promise<void>((resolve) => {
        const s = connect({ host, port: Number(port) });
        sockets.push(s);
        let counted = false;
        s.once('connect', () => {
          s.write(Buffer.from([0x16, 0x03, 0x01]));
          // Refused connections are reset at once; one that is still open after a moment is held.
          setTimeout(() => {
            if (counted) return;
            counted = true;
            if (s.destroyed) refused++;
            else held++;
            settle();
            resolve();
          }, 300);
        });
        s.on('error', () => {});
        s.once('close', () => {
          if (counted) return;
          counted = true;
          refused++;
          settle();
          resolve();
        });
      });
    });
    await Promise.all(batch);
  }
}
void openAll();
setTimeout(() => {
  for (const s of sockets) s.destroy();
  out({ done: true });
  process.exit(0);
}, Number(seconds) * 1000);
