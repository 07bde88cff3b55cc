/**
 * Raw TCP clients for data-path tests; print one JSON result line.
 *   hold N HOST PORT     open N connections, round-trip one byte on each, print {held}, keep them
 *                        open until stdin (not /dev/null) ends, a signal or 60 s; print {closed: N} and exit once the
 *                        other side has ended or reset every one of them
 *   sha BYTES HOST PORT  stream BYTES random bytes (hashing them), end, read the server's sha256
 *   banner HOST PORT     read the server's first line before writing anything
 *   halfclose HOST PORT  write "ping", end our half, then read everything the echo sends back
 *   finonly HOST PORT    end our half at once, writing nothing; print {eof} once the echo's end
 *                        comes back (what a probe or a client with nothing to say does)
 *   steady MS HOST PORT  write one byte every MS ms; print {echo: time} for each byte back and
 *                        {closed: time, error?} when the connection ends (times: Date.now())
 *   twice MS HOST PORT   round-trip "a", print {first}, wait MS, round-trip "b" on the same
 *                        connection, print {second}
 *   resetafter MS HOST PORT  connect, write nothing, reset the connection after MS, print {reset}
 *   burst N HOLDMS HOST PORT  open N connections (at most 500 connecting at a time), round-trip
 *                        1 KiB on each, hold all N open for HOLDMS, end them all, print {held,
 *                        closed, failed, openMs, closeMs} once every one has closed; exits 1
 *                        after 120 s whatever is left
 */
import { createHash, randomBytes } from 'node:crypto';
import { fstatSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

const [mode, ...args] = process.argv.slice(2);
const out = (v: unknown) => console.log(JSON.stringify(v));
const open = (host: string, port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const s = connect({ host, port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });

async function hold(n: number, host: string, port: number) {
  const sockets = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = await open(host, port);
      await new Promise<void>((resolve) => {
        s.once('data', () => resolve());
        s.write('x');
      });
      return s;
    }),
  );
  out({ held: sockets.length });
  let closed = 0;
  for (const s of sockets) {
    s.on('error', () => {});
    // A FIN (the peer's 'end') or a reset (straight to 'close') both count, once.
    let counted = false;
    const count = () => {
      if (counted) return;
      counted = true;
      if (++closed < sockets.length) return;
      out({ closed });
      process.exit(0);
    };
    s.once('end', count);
    s.once('close', count);
  }
  // lab.spawn gives clients /dev/null as stdin, which ends at once: only a pipe or a socket
  // (what child_process makes) counts.
  if (!fstatSync(0).isCharacterDevice()) {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  }
  setTimeout(() => process.exit(0), 60_000);
  await new Promise(() => {});
}

async function sha(bytes: number, host: string, port: number) {
  const s = await open(host, port);
  const local = createHash('sha256');
  let answer = '';
  s.on('data', (c: Buffer) => {
    answer += c.toString();
  });
  const chunk = 1 << 20;
  for (let sent = 0; sent < bytes; sent += chunk) {
    const block = randomBytes(Math.min(chunk, bytes - sent));
    local.update(block);
    if (!s.write(block)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  await new Promise((r) => s.once('end', r));
  out({ sent: local.digest('hex'), received: answer.trim() });
}

async function banner(host: string, port: number) {
  const s = await open(host, port);
  const line = await new Promise<string>((r) =>
    s.once('data', (c: Buffer) => r(c.toString().trim())),
  );
  s.destroy();
  out({ banner: line });
}

async function halfclose(host: string, port: number) {
  const s = await open(host, port);
  let back = '';
  s.on('data', (c: Buffer) => {
    back += c.toString();
  });
  s.end('ping');
  await new Promise((r) => s.once('end', r));
  out({ echoed: back });
}

async function finOnly(host: string, port: number) {
  const s = await open(host, port);
  let bytes = 0;
  s.on('data', (c: Buffer) => {
    bytes += c.length;
  });
  s.end();
  await new Promise((r) => s.once('end', r));
  out({ eof: true, bytes });
}

async function steady(ms: number, host: string, port: number) {
  let s: Socket;
  try {
    s = await open(host, port);
  } catch (err) {
    // A reset can beat the connect's own completion (the agent refuses within a millisecond).
    out({ closed: Date.now(), error: (err as NodeJS.ErrnoException).code ?? String(err) });
    return;
  }
  s.on('data', () => out({ echo: Date.now() }));
  const timer = setInterval(() => s.write('x'), ms);
  const error = await new Promise<string | undefined>((resolve) => {
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    s.once('close', () => resolve(undefined));
  });
  clearInterval(timer);
  out({ closed: Date.now(), ...(error ? { error } : {}) });
}

async function twice(ms: number, host: string, port: number) {
  const s = await open(host, port);
  const roundTrip = (byte: string) =>
    new Promise<string>((resolve, reject) => {
      s.once('data', (c: Buffer) => resolve(c.toString()));
      s.once('close', () => reject(new Error('connection closed')));
      s.write(byte);
    });
  out({ first: await roundTrip('a') });
  await new Promise((r) => setTimeout(r, ms));
  out({ second: await roundTrip('b') });
  s.destroy();
}

async function resetAfter(ms: number, host: string, port: number) {
  const s = await open(host, port);
  s.on('error', () => {});
  await new Promise((r) => setTimeout(r, ms));
  s.resetAndDestroy();
  out({ reset: true });
}

const BURST_OPENING = 500;
const BURST_BYTES = 1024;

/** Opens one burst connection and round-trips BURST_BYTES; undefined when it failed. */
async function burstOne(host: string, port: number): Promise<Socket | undefined> {
  try {
    const s = await open(host, port);
    s.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      let back = 0;
      const onData = (c: Buffer) => {
        back += c.length;
        if (back < BURST_BYTES) return;
        s.off('data', onData);
        resolve();
      };
      s.on('data', onData);
      s.once('close', () => reject(new Error('closed before the echo')));
      s.write(Buffer.alloc(BURST_BYTES, 'x'));
    });
    return s;
  } catch {
    return undefined;
  }
}

/** Ends every socket (FIN) and resolves once all of them have closed. */
function closeAll(sockets: Socket[]): Promise<void> {
  let left = sockets.length;
  if (left === 0) return Promise.resolve();
  return new Promise((resolve) => {
    for (const s of sockets) {
      s.once('close', () => {
        if (--left === 0) resolve();
      });
      s.resume(); // the echo's FIN arrives only if its data is read
      s.end();
    }
  });
}

async function burst(n: number, holdMs: number, host: string, port: number) {
  // Bounded whatever the agents do: the bench waits for this process's line.
  setTimeout(() => {
    console.error('burst: not done within 120 s');
    process.exit(1);
  }, 120_000).unref();
  const started = Date.now();
  const sockets: Socket[] = [];
  let failed = 0;
  // A few hundred SYNs at a time: the listen backlogs (the agent's, the server's) stay unfilled.
  for (let opened = 0; opened < n; opened += BURST_OPENING) {
    const batch = Math.min(BURST_OPENING, n - opened);
    const made = await Promise.all(Array.from({ length: batch }, () => burstOne(host, port)));
    for (const s of made) {
      if (s) sockets.push(s);
      else failed += 1;
    }
  }
  const openMs = Date.now() - started;
  await new Promise((r) => setTimeout(r, holdMs));
  const closing = Date.now();
  await closeAll(sockets);
  out({
    held: sockets.length,
    closed: sockets.length,
    failed,
    openMs,
    closeMs: Date.now() - closing,
  });
}

const [a = '', b = '', c = '', d = ''] = args;
const modes: Record<string, () => Promise<void>> = {
  hold: () => hold(Number(a), b, Number(c)),
  sha: () => sha(Number(a), b, Number(c)),
  banner: () => banner(a, Number(b)),
  halfclose: () => halfclose(a, Number(b)),
  finonly: () => finOnly(a, Number(b)),
  steady: () => steady(Number(a), b, Number(c)),
  twice: () => twice(Number(a), b, Number(c)),
  resetafter: () => resetAfter(Number(a), b, Number(c)),
  burst: () => burst(Number(a), Number(b), c, Number(d)),
};
const run = (modes[mode ?? ''] ?? (() => Promise.reject(new Error(`unknown mode ${mode}`))))();
run.then(
  () => mode !== 'hold' && process.exit(0),
  (err: unknown) => {
    console.error(String(err));
    process.exit(1);
  },
);
