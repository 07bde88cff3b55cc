// splice() between a stream that delivers chunks like an HTTP/2 CONNECT stream does (many
// TLS-record-sized pieces in one event-loop turn) and a real TCP socket: bulk pieces reach the
// socket as one writev, small ones are written at once, and back-pressure still holds; a socket
// that resets on close (linger 0) is ended normally with linger off.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { abortSide, lingerOff, RESET_ON_CLOSE, splice } from '../../daemon/hbone/index.js';
import { getLinger, setLinger } from '../../daemon/net/index.js';

const RECORD = 16 * 1024 - 9;
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** A duplex whose readable side the test feeds; what is written to it is dropped. */
function tunnelLike(): Duplex {
  return new Duplex({
    allowHalfOpen: true,
    read() {},
    write(_chunk, _encoding, done) {
      done();
    },
  });
}

interface SocketPair {
  local: Socket;
  remote: Socket;
}

async function socketPair(t: TestContext): Promise<SocketPair> {
  const server: Server = createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const local = connect(address.port, '127.0.0.1');
  await once(local, 'connect');
  const [remote] = await accepted;
  t.after(() => {
    local.destroy();
    remote.destroy();
    server.close();
  });
  return { local, remote };
}

/** Counts the socket's write and writev calls (how many chunks reached the kernel how). */
function countWrites(socket: Socket): { writes: number; writevs: number; chunksInWritev: number } {
  const counts = { writes: 0, writevs: 0, chunksInWritev: 0 };
  const s = socket as unknown as {
    _write: (...a: unknown[]) => void;
    _writev: (chunks: unknown[], cb: unknown) => void;
  };
  const write = s._write.bind(socket);
  const writev = s._writev.bind(socket);
  s._write = (...a) => {
    counts.writes++;
    write(...a);
  };
  s._writev = (chunks, cb) => {
    counts.writevs++;
    counts.chunksInWritev += chunks.length;
    writev(chunks, cb);
  };
  return counts;
}

async function readBytes(socket: Socket, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  for await (const chunk of socket) {
    parts.push(chunk as Buffer);
    got += (chunk as Buffer).length;
    if (got >= length) break;
  }
  return Buffer.concat(parts);
}

/** A tunnel-like stream spliced to a real socket, its writes counted, one turn later. */
async function splicedToSocket(t: TestContext) {
  const { local, remote } = await socketPair(t);
  const tunnel = tunnelLike();
  void splice(tunnel, local);
  const counts = countWrites(local);
  await turn();
  return { local, remote, tunnel, counts };
}

test('bulk chunks delivered in one turn reach the socket as one writev, in order', async (t) => {
  const { remote, tunnel, counts } = await splicedToSocket(t);
  const pieces = Array.from({ length: 8 }, () => randomBytes(RECORD));
  for (const piece of pieces) tunnel.push(piece);
  const expected = Buffer.concat(pieces);
  const received = await readBytes(remote, expected.length);
  assert.deepEqual(received, expected);
  assert.equal(counts.writevs, 1, 'one writev for the turn');
  assert.equal(counts.chunksInWritev + counts.writes, pieces.length);
  assert.ok(counts.writes <= 1, `at most the first piece alone, got ${counts.writes} writes`);
});

test('small chunks are written at once, not held for the turn', async (t) => {
  const { local, remote, tunnel, counts } = await splicedToSocket(t);
  tunnel.push(Buffer.from('ping'));
  assert.equal(local.writableCorked, 0);
  assert.equal(counts.writes, 1, 'written within the same turn');
  assert.equal((await readBytes(remote, 4)).toString(), 'ping');
});

test('a reader that stops reading pauses the tunnel side, and everything arrives later', async (t) => {
  const { local, remote } = await socketPair(t);
  remote.pause();
  const tunnel = tunnelLike();
  void splice(tunnel, local);
  await turn();
  const total = 64 * 1024 * 1024;
  const piece = randomBytes(RECORD);
  let pushed = 0;
  const deadline = Date.now() + 10_000;
  while (!tunnel.isPaused() && pushed < total && Date.now() < deadline) {
    for (let i = 0; i < 16; i++) tunnel.push(piece);
    pushed += 16 * piece.length;
    await turn();
  }
  assert.ok(tunnel.isPaused(), `tunnel never paused after ${pushed} bytes`);
  assert.ok(pushed < total, 'paused before the bound');
  assert.ok(local.writableLength < pushed, 'the socket buffer did not take everything');
  tunnel.push(null);
  remote.resume();
  let received = 0;
  for await (const chunk of remote) received += (chunk as Buffer).length;
  assert.equal(received, pushed);
});

test("a client's FIN that came before the splice (no data, nobody reading yet) still ends the tunnel", async (t) => {
  const { local: client, remote: accepted } = await socketPair(t);
  client.end(); // connect, then half-close at once: a probe, or a client that changed its mind
  // Node reads the FIN as soon as it arrives and emits 'end' with nobody listening.
  for (let i = 0; i < 100 && !accepted.readableEnded; i++) await turn();
  assert.ok(accepted.readableEnded, "the accepted socket's 'end' came before the splice");
  const tunnel = tunnelLike();
  const finished = once(tunnel, 'finish');
  void splice(accepted, tunnel);
  const timeout = setTimeout(() => tunnel.destroy(new Error('the tunnel was never ended')), 2000);
  try {
    await finished;
  } finally {
    clearTimeout(timeout);
  }
  tunnel.push(null); // the peer ends its half too: the client sees EOF, the splice completes
  const [eof] = await Promise.all([readBytes(client, 1), once(accepted, 'close')]);
  assert.equal(eof.length, 0, 'the client got EOF and no bytes');
});

test('a tunnel reset before the splice began (its "aborted" unheard) resets the client, never ends it cleanly', async (t) => {
  const { local: client, remote: accepted } = await socketPair(t);
  // What Node leaves of an HTTP/2 stream reset by the peer while the agent was still busy
  // (connecting upstream): flagged aborted, readable half ended, not yet destroyed.
  const tunnel = Object.assign(tunnelLike(), {
    rstCode: 0,
    session: {},
    aborted: true,
    close(this: Duplex) {
      this.destroy();
    },
  });
  tunnel.push(null);
  tunnel.resume();
  await once(tunnel, 'end');
  assert.ok(tunnel.readableEnded && !tunnel.destroyed);
  const failed = once(client, 'error') as Promise<[NodeJS.ErrnoException]>;
  const result = await splice(accepted, tunnel);
  assert.match(String(result.error?.message), /Premature close/);
  const [err] = await failed;
  assert.equal(err.code, 'ECONNRESET', 'the client got a reset, not a FIN');
});

test('abortSide on a socket whose FIN is still on its way closes it (no reset refused, no leaked handle)', async (t) => {
  const { local } = await socketPair(t);
  local.on('error', () => {});
  local.end();
  await new Promise<void>((resolve) => process.nextTick(resolve)); // the shutdown is in flight
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 2000);
    local.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  abortSide(local);
  assert.equal(await closed, true, "'close' came: the handle was closed");
});

test('an application-facing socket lingering 0 keeps it while bytes wait in Node, has it off when closed, and gets every byte and a FIN', async (t) => {
  const { local: agentSide, remote: app } = await socketPair(t);
  setLinger(agentSide, RESET_ON_CLOSE);
  const fd = (agentSide as unknown as { _handle: { fd: number } })._handle.fd;
  // What the kernel would do if the agent died at these moments: at end() (bytes still in
  // Node) a reset, at the close a FIN after the rest.
  let lingerAtEnd: number | undefined | 'never ended' = 'never ended';
  let lingerAtClose: number | undefined | 'never closed' = 'never closed';
  const end = agentSide.end.bind(agentSide);
  agentSide.end = ((...args: Parameters<Socket['end']>) => {
    lingerAtEnd = getLinger(agentSide);
    return end(...args);
  }) as Socket['end'];
  const handle = (agentSide as unknown as { _handle: { close: (...a: unknown[]) => unknown } })
    ._handle;
  const close = handle.close.bind(handle);
  handle.close = (...args: unknown[]) => {
    lingerAtClose = getLinger(fd);
    return close(...args);
  };
  app.pause(); // the application reads late: the agent's bytes wait, in the kernel and in Node
  const tunnel = tunnelLike();
  const spliced = splice(tunnel, agentSide);
  const sent = randomBytes(8 * 1024 * 1024);
  for (let at = 0; at < sent.length; at += RECORD) tunnel.push(sent.subarray(at, at + RECORD));
  tunnel.push(null);
  await turn();
  app.end(); // both halves end: Node closes the agent's socket once its writes are done
  const received = await new Promise<{ bytes: number; how: string }>((resolve) => {
    let bytes = 0;
    app.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    app.once('end', () => resolve({ bytes, how: 'end' }));
    app.once('error', (err: NodeJS.ErrnoException) => resolve({ bytes, how: String(err.code) }));
    setTimeout(() => app.resume(), 100);
  });
  assert.equal((await spliced).error, undefined);
  assert.equal(lingerAtEnd, RESET_ON_CLOSE, 'until the bytes reach the kernel, a death resets');
  assert.equal(lingerAtClose, undefined, 'closed with linger off: a FIN, not a reset');
  assert.deepEqual(received, { bytes: sent.length, how: 'end' });
});

test('lingerOff on a destroyed socket does nothing and does not throw', async (t) => {
  const { local } = await socketPair(t);
  local.destroy();
  assert.doesNotThrow(() => lingerOff(local));
});
