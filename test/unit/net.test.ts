/**
 * daemon/net against the real kernel (needs root). Network safety: every socket lives in a
 * namespace this file creates (mdl-t + random suffix) and deletes afterwards; traffic goes to
 * loopback inside those namespaces only. The host namespace is only read (/proc/net/tcp).
 */
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { type AddressInfo, Server, type Socket } from 'node:net';
import { after, test } from 'node:test';
import {
  connectFromNetns,
  getLinger,
  getMark,
  getTcpKeepalive,
  getTcpUserTimeout,
  listenInNetns,
  NetnsError,
  netnsPath,
  OriginalDstError,
  originalDst,
  SocketError,
  setFreebind,
  setLinger,
  setMark,
  setReusePort,
  setTcpKeepalive,
  setTcpUserTimeout,
  setTransparent,
} from '../../daemon/net/index.js';

// ---- namespaces and clean-up -------------------------------------------------------------

const namespaces: string[] = [];
const closers: Array<() => void> = [];

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A fresh namespace with lo up; deleted in after() whatever happens. */
function makeNetns(): { name: string; path: string } {
  const name = `mdl-t${randomBytes(5).toString('hex')}`;
  run('ip', ['netns', 'add', name]);
  namespaces.push(name);
  run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, path: netnsPath(name) };
}

function track<T extends Server | Socket | ChildProcess>(thing: T): T {
  closers.push(() => {
    if (thing instanceof ChildProcess) thing.kill('SIGKILL');
    else if (thing instanceof Server) thing.close();
    else thing.destroy();
  });
  return thing;
}

after(() => {
  for (const close of closers) close();
  for (const name of namespaces) {
    try {
      run('ip', ['netns', 'del', name]);
    } catch (err) {
      console.error(`could not delete test namespace ${name}:`, err);
    }
  }
});

// ---- helpers -----------------------------------------------------------------------------

const ownNetns = () => readlinkSync('/proc/thread-self/ns/net');
const openFds = () => readdirSync('/proc/self/fd').length;

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

function readAll(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.once('end', () => resolve(text));
    socket.once('error', reject);
  });
}

/** Replies "echo:<what it read>" and closes; records the accepted sockets and their peers. */
function echo(accepted: Socket[] = [], peers: string[] = []): (s: Socket) => void {
  return (socket) => {
    accepted.push(track(socket));
    peers.push(`${socket.remoteAddress}:${socket.remotePort}`);
    readAll(socket).then(
      (text) => socket.end(`echo:${text}`),
      () => socket.destroy(),
    );
  };
}

/** TCP ports in LISTEN state in a /proc/net/tcp{,6} text (the reader's namespace). */
function listeningPorts(procNetTcp: string): Set<number> {
  const ports = new Set<number>();
  for (const line of procNetTcp.split('\n').slice(1)) {
    const [, local, , state] = line.trim().split(/\s+/);
    if (state === '0A' && local) ports.add(Number.parseInt(local.split(':')[1] ?? '', 16));
  }
  return ports;
}

function hostListeningPorts(): Set<number> {
  const v4 = readFileSync('/proc/net/tcp', 'utf8');
  const v6 = readFileSync('/proc/net/tcp6', 'utf8');
  return new Set([...listeningPorts(v4), ...listeningPorts(v6)]);
}

async function assertRejectsWith<E>(
  promise: Promise<unknown>,
  cls: new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a ${cls.name} rejection`);
}

// ---- tests -------------------------------------------------------------------------------

test('argument validation rejects bad names, marks, ports and families before any syscall', async () => {
  assert.equal(netnsPath('cni-1234_a.b'), '/var/run/netns/cni-1234_a.b');
  for (const bad of ['', '..', '.hidden', 'a/b', '../etc', 'x'.repeat(256), 'sp ace']) {
    assert.throws(() => netnsPath(bad), TypeError, bad);
  }
  assert.throws(() => setMark(0, -1), /mark must be an integer 0\.\.4294967295, got -1/);
  assert.throws(() => setMark(0, 2 ** 32), RangeError);
  assert.throws(() => setMark(0, 1.5), RangeError);
  const base = { netns: '/var/run/netns/x', family: 4, host: '127.0.0.1', port: 0 } as const;
  await assert.rejects(
    listenInNetns({ ...base, port: 70_000 }),
    /port must be an integer 0\.\.65535/,
  );
  await assert.rejects(listenInNetns({ ...base, family: 5 as 4 }), /family must be 4 or 6/);
  await assert.rejects(listenInNetns({ ...base, host: '::1' }), /IPv4 address literal/);
  await assert.rejects(listenInNetns({ ...base, host: 'localhost' }), /IPv4 address literal/);
  await assert.rejects(listenInNetns({ ...base, netns: 'x' }), /absolute path/);
  await assert.rejects(connectFromNetns({ ...base, mark: 2 ** 32 }), RangeError);
});

test('setMark/getMark round-trip on loopback sockets, by socket and by fd', async () => {
  const ns = makeNetns();
  const server = track(
    await listenInNetns(
      { netns: ns.path, family: 4, host: '127.0.0.1', port: 0, allowHalfOpen: true },
      echo(),
    ),
  );
  const port = portOf(server);

  const marked = track(
    await connectFromNetns({ netns: ns.path, family: 4, host: '127.0.0.1', port, mark: 42 }),
  );
  assert.equal(getMark(marked), 42, 'mark option applied before connect');

  setMark(marked, 0xdead_beef);
  assert.equal(getMark(marked), 0xdead_beef, 'full 32-bit marks survive');
  const fd = (marked as unknown as { _handle: { fd: number } })._handle.fd;
  setMark(fd, 7);
  assert.equal(getMark(fd), 7);
  assert.equal(getMark(marked), 7, 'fd and socket are the same kernel socket');

  const plain = track(
    await connectFromNetns({ netns: ns.path, family: 4, host: '127.0.0.1', port }),
  );
  assert.equal(getMark(plain), 0, 'no mark unless asked');

  // The other options take a socket too (family from the kernel when not given).
  setTransparent(plain);
  setFreebind(plain, 4);
  setReusePort(plain);
});

test('setLinger, setTcpUserTimeout and setTcpKeepalive: the kernel reads back what was set', async () => {
  const ns = makeNetns();
  const server = track(
    await listenInNetns(
      { netns: ns.path, family: 4, host: '127.0.0.1', port: 0, allowHalfOpen: true },
      echo(),
    ),
  );
  const socket = track(
    await connectFromNetns({ netns: ns.path, family: 4, host: '127.0.0.1', port: portOf(server) }),
  );
  const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;

  assert.equal(getLinger(socket), undefined, 'off unless asked');
  setLinger(socket, 0);
  assert.equal(getLinger(socket), 0);
  setLinger(fd, 7);
  assert.equal(getLinger(socket), 7, 'by fd: the same kernel socket');
  setLinger(socket, undefined);
  assert.equal(getLinger(fd), undefined);

  assert.equal(getTcpUserTimeout(socket), 0, "the kernel's default unless asked");
  setTcpUserTimeout(socket, 12_345);
  assert.equal(getTcpUserTimeout(socket), 12_345);
  setTcpUserTimeout(fd, 0);
  assert.equal(getTcpUserTimeout(socket), 0);

  assert.equal(getTcpKeepalive(socket).enabled, false, 'off unless asked');
  setTcpKeepalive(socket, { idleSeconds: 30, intervalSeconds: 5, count: 4 });
  assert.deepEqual(
    { ...getTcpKeepalive(socket) },
    { enabled: true, idleSeconds: 30, intervalSeconds: 5, count: 4 },
  );
  setTcpKeepalive(fd, { idleSeconds: 32_767, intervalSeconds: 1, count: 127 });
  assert.deepEqual(
    { ...getTcpKeepalive(fd) },
    { enabled: true, idleSeconds: 32_767, intervalSeconds: 1, count: 127 },
  );
});

test('linger, user timeout and keepalive: bad values are RangeErrors, a dead socket or a non-socket a SocketError', async () => {
  assert.throws(() => setLinger(0, -1), /setLinger: seconds must be an integer 0\.\.65535, got -1/);
  assert.throws(() => setLinger(0, 1.5), RangeError);
  assert.throws(() => setTcpUserTimeout(0, -1), RangeError);
  assert.throws(() => setTcpUserTimeout(0, 2 ** 31), RangeError);
  const ok = { idleSeconds: 1, intervalSeconds: 1, count: 1 };
  for (const bad of [
    { ...ok, idleSeconds: 0 },
    { ...ok, idleSeconds: 32_768 },
    { ...ok, intervalSeconds: 0 },
    { ...ok, count: 0 },
    { ...ok, count: 128 },
  ]) {
    assert.throws(() => setTcpKeepalive(0, bad), RangeError, JSON.stringify(bad));
  }

  const ns = makeNetns();
  const server = track(
    await listenInNetns({ netns: ns.path, family: 4, host: '127.0.0.1', port: 0 }, (s) => {
      track(s);
    }),
  );
  const socket = await connectFromNetns({
    netns: ns.path,
    family: 4,
    host: '127.0.0.1',
    port: portOf(server),
  });
  socket.destroy();
  for (const call of [
    () => setLinger(socket, 0),
    () => setTcpUserTimeout(socket, 1),
    () => setTcpKeepalive(socket, ok),
  ]) {
    assert.throws(call, { code: 'MESHD_E_SOCKET', errnoName: 'EBADF' });
  }

  const file = openSync('/dev/null', 'r');
  try {
    assert.throws(() => setLinger(file, 0), {
      code: 'MESHD_E_SOCKET',
      errnoName: 'ENOTSOCK',
      syscall: 'setsockopt',
    });
    assert.throws(() => getTcpKeepalive(file), { errnoName: 'ENOTSOCK', syscall: 'getsockopt' });
  } finally {
    closeSync(file);
  }
});

test('linger on a listener is inherited by the connections it accepts; connectFromNetns sets it before connect', async () => {
  const ns = makeNetns();
  let onAccept: (s: Socket) => void = () => {};
  const accepted = new Promise<Socket>((resolve) => {
    onAccept = resolve;
  });
  const opts = { netns: ns.path, family: 4, host: '127.0.0.1' } as const;
  const server = track(
    await listenInNetns({ ...opts, port: 0, linger: 0 }, (s) => onAccept(track(s))),
  );
  const client = track(await connectFromNetns({ ...opts, port: portOf(server), linger: 3 }));
  assert.equal(getLinger(client), 3);
  assert.equal(getLinger(await accepted), 0, 'copied from the listener at accept');
  assert.equal(
    getLinger(track(await connectFromNetns({ ...opts, port: portOf(server) }))),
    undefined,
  );
  await assert.rejects(connectFromNetns({ ...opts, port: 1, linger: -1 }), RangeError);
});

test('SO_LINGER 0 makes close() a reset; off, close() is a clean end', async () => {
  const ns = makeNetns();
  const ends: Array<{ how: Promise<string> }> = [];
  const server = track(
    await listenInNetns(
      { netns: ns.path, family: 4, host: '127.0.0.1', port: 0, allowHalfOpen: true },
      (s) => {
        track(s);
        const how = new Promise<string>((resolve) => {
          s.once('end', () => resolve('end'));
          s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        });
        s.resume();
        ends.push({ how });
      },
    ),
  );
  /** A connection the server has accepted, and how the server will see it end. */
  const open = async () => {
    const n = ends.length + 1;
    const socket = track(
      await connectFromNetns({
        netns: ns.path,
        family: 4,
        host: '127.0.0.1',
        port: portOf(server),
      }),
    );
    for (let i = 0; i < 200 && ends.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    const accepted = ends[n - 1];
    assert.ok(accepted, 'the server accepted the connection');
    return { socket, how: accepted.how };
  };

  const reset = await open();
  setLinger(reset.socket, 0);
  reset.socket.write('cut short');
  reset.socket.destroy();
  assert.equal(await reset.how, 'ECONNRESET');

  const clean = await open();
  setLinger(clean.socket, 0);
  setLinger(clean.socket, undefined);
  clean.socket.end('complete');
  assert.equal(await clean.how, 'end');
});

test('listenInNetns/connectFromNetns exchange bytes inside the namespace, not in the host', async () => {
  const a = makeNetns();
  const b = makeNetns();
  const before = ownNetns();
  // A port nothing listens on in the host, so the host-side check below is meaningful.
  const busy = hostListeningPorts();
  let port = 20_000 + (randomBytes(2).readUInt16BE() % 30_000);
  while (busy.has(port)) port++;

  const accepted: Socket[] = [];
  const peers: string[] = [];
  const server = track(
    await listenInNetns(
      { netns: a.path, family: 4, host: '127.0.0.1', port, allowHalfOpen: true },
      echo(accepted, peers),
    ),
  );
  assert.equal(ownNetns(), before, 'the thread is back in its own namespace');
  assert.equal(portOf(server), port);

  const client = track(
    await connectFromNetns({ netns: a.path, family: 4, host: '127.0.0.1', port }),
  );
  client.end('hello');
  assert.equal(await readAll(client), 'echo:hello');
  assert.equal(accepted.length, 1);

  // A chosen source address (bound by the addon before connect) is what the server sees.
  const sourced = track(
    await connectFromNetns({
      netns: a.path,
      family: 4,
      host: '127.0.0.1',
      port,
      localAddress: '127.0.0.9',
    }),
  );
  sourced.end('from .9');
  assert.equal(await readAll(sourced), 'echo:from .9');
  assert.match(peers[1] ?? '', /^127\.0\.0\.9:\d+$/, 'the server sees the bound source');

  // The listener is in namespace a: its /proc/net/tcp lists it, the host's does not, and the
  // same port in another fresh namespace refuses.
  const inA = listeningPorts(run('ip', ['netns', 'exec', a.name, 'cat', '/proc/net/tcp']));
  assert.ok(inA.has(port), `port ${port} listens in ${a.name}`);
  assert.ok(!hostListeningPorts().has(port), `port ${port} does not listen in the host`);
  const refused = await assertRejectsWith(
    connectFromNetns({ netns: b.path, family: 4, host: '127.0.0.1', port }),
    SocketError,
  );
  assert.equal(refused.code, 'MESHD_E_SOCKET');
  assert.equal(refused.errnoName, 'ECONNREFUSED');
  assert.equal(refused.syscall, 'connect');
  assert.equal(refused.address, `127.0.0.1:${port}`);
  assert.equal(ownNetns(), before);
});

test('IPv6 listener and client in a namespace', async () => {
  const ns = makeNetns();
  const server = track(
    await listenInNetns(
      { netns: ns.path, family: 6, host: '::1', port: 0, ipv6Only: true, allowHalfOpen: true },
      echo(),
    ),
  );
  const client = track(
    await connectFromNetns({ netns: ns.path, family: 6, host: '::1', port: portOf(server) }),
  );
  assert.equal(client.remoteAddress, '::1');
  client.end('six');
  assert.equal(await readAll(client), 'echo:six');
});

test('reusePort lets two listeners share a port and both receive connections', async () => {
  const ns = makeNetns();
  const opts = { netns: ns.path, family: 4, host: '127.0.0.1', reusePort: true } as const;
  const listen = { ...opts, allowHalfOpen: true };
  const first: Socket[] = [];
  const second: Socket[] = [];
  const one = track(await listenInNetns({ ...listen, port: 0 }, echo(first)));
  const port = portOf(one);
  const two = track(await listenInNetns({ ...listen, port }, echo(second)));
  assert.equal(portOf(two), port);

  // The kernel spreads by a hash of the 4-tuple: 32 connections all landing on one listener
  // has a probability of 2^-31.
  for (let i = 0; i < 32; i++) {
    const client = track(await connectFromNetns({ ...opts, port }));
    client.end(`n${i}`);
    assert.equal(await readAll(client), `echo:n${i}`);
  }
  assert.equal(first.length + second.length, 32);
  assert.ok(first.length > 0 && second.length > 0, `spread ${first.length}/${second.length}`);
});

test('originalDst of a connection that was not redirected throws MESHD_E_ORIGINAL_DST', async () => {
  // A fresh namespace without NAT rules: conntrack does not track its connections.
  const ns = makeNetns();
  let onAccept: (s: Socket) => void = () => {};
  const accepted = new Promise<Socket>((resolve) => {
    onAccept = resolve;
  });
  const server = track(
    await listenInNetns({ netns: ns.path, family: 4, host: '127.0.0.1', port: 0 }, (s) =>
      onAccept(track(s)),
    ),
  );
  const client = track(
    await connectFromNetns({ netns: ns.path, family: 4, host: '127.0.0.1', port: portOf(server) }),
  );
  const conn = await accepted;

  const err = (() => {
    try {
      originalDst(conn);
    } catch (e) {
      return e;
    }
    assert.fail('originalDst should throw');
  })();
  assert.ok(err instanceof OriginalDstError);
  assert.equal(err.code, 'MESHD_E_ORIGINAL_DST');
  assert.ok(['ENOENT', 'ENOPROTOOPT'].includes(err.errnoName), err.errnoName);
  assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${client.localPort}`));
  assert.ok(err.hint);

  conn.destroy();
  await new Promise((resolve) => conn.once('close', resolve));
  assert.throws(() => originalDst(conn), { code: 'MESHD_E_ORIGINAL_DST', errnoName: 'ENOTCONN' });
});

test('a missing or wrong netns path is a NetnsError and the thread stays in its namespace', async () => {
  const before = ownNetns();
  const fds = openFds();
  const missing = netnsPath(`mdl-t${randomBytes(5).toString('hex')}-absent`);
  const err = await assertRejectsWith(
    listenInNetns({ netns: missing, family: 4, host: '127.0.0.1', port: 0 }),
    NetnsError,
  );
  assert.equal(err.code, 'MESHD_E_NETNS');
  assert.equal(err.errnoName, 'ENOENT');
  assert.equal(err.errno, 2);
  assert.equal(err.syscall, 'open');
  assert.equal(err.netns, missing);
  assert.ok(err.message.includes(missing), err.message);
  assert.match(err.message, /No such file or directory/);
  assert.equal(ownNetns(), before);

  // A namespace file of another kind: setns refuses it, nothing changed.
  const uts = await assertRejectsWith(
    connectFromNetns({ netns: '/proc/self/ns/uts', family: 4, host: '127.0.0.1', port: 1 }),
    NetnsError,
  );
  assert.equal(uts.syscall, 'setns');
  assert.equal(uts.errnoName, 'EINVAL');
  assert.equal(ownNetns(), before);
  assert.equal(openFds(), fds, 'no file descriptor leaked on the error paths');
});

test('EADDRINUSE from bind is a SocketError naming the address; the thread comes back', async () => {
  const ns = makeNetns();
  const before = ownNetns();
  const opts = { netns: ns.path, family: 4, host: '127.0.0.1' } as const;
  const server = track(await listenInNetns({ ...opts, port: 0 }));
  const port = portOf(server);
  const fds = openFds();

  const err = await assertRejectsWith(listenInNetns({ ...opts, port }), SocketError);
  assert.equal(err.code, 'MESHD_E_SOCKET');
  assert.equal(err.errnoName, 'EADDRINUSE');
  assert.equal(err.syscall, 'bind');
  assert.equal(err.address, `127.0.0.1:${port}`);
  assert.equal(err.netns, ns.path);
  assert.ok(err.message.includes(`127.0.0.1:${port}`), err.message);
  assert.ok(err.message.includes(ns.path), err.message);
  assert.equal(ownNetns(), before, 'returned after an error that happened inside the namespace');

  // The same failure from the client side: a fixed source port already taken.
  const taken = await assertRejectsWith(
    connectFromNetns({ ...opts, port, localAddress: '127.0.0.1', localPort: port }),
    SocketError,
  );
  assert.equal(taken.errnoName, 'EADDRINUSE');
  assert.equal(ownNetns(), before);
  assert.equal(openFds(), fds, 'the failed sockets were closed');
});

test('freebind and transparent allow binding an address the namespace does not have', async () => {
  const ns = makeNetns();
  const opts = { netns: ns.path, family: 4, host: '192.0.2.10', port: 0 } as const;
  const err = await assertRejectsWith(listenInNetns(opts), SocketError);
  assert.equal(err.errnoName, 'EADDRNOTAVAIL');
  assert.equal(err.address, '192.0.2.10:0');

  const free = track(await listenInNetns({ ...opts, freebind: true }));
  assert.equal((free.address() as AddressInfo).address, '192.0.2.10');
  const transparent = track(await listenInNetns({ ...opts, transparent: true, mark: 0x539 }));
  assert.equal((transparent.address() as AddressInfo).address, '192.0.2.10');
});

test('connectFromNetns times out, rejecting with ETIMEDOUT and destroying the socket', async () => {
  const ns = makeNetns();
  // A listener that never accepts (its process blocks): once its queue is full the kernel
  // drops further SYNs, so the next connect hangs.
  const script = [
    "const s = require('node:net').createServer();",
    "s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {",
    '  process.stdout.write(String(s.address().port) + "\\n");',
    '  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000);',
    '});',
  ].join('\n');
  const child = track(
    spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`listener process exited (${code})`)));
  });

  let timedOut: SocketError | undefined;
  for (let i = 0; i < 6 && !timedOut; i++) {
    try {
      track(
        await connectFromNetns({
          netns: ns.path,
          family: 4,
          host: '127.0.0.1',
          port,
          timeoutMs: 300,
        }),
      );
    } catch (err) {
      assert.ok(err instanceof SocketError, String(err));
      timedOut = err;
    }
  }
  assert.ok(timedOut, 'a connect to a full accept queue timed out');
  assert.equal(timedOut.errnoName, 'ETIMEDOUT');
  assert.match(timedOut.message, /no answer within 300 ms/);
});

test('iptables REDIRECT inside a test namespace: originalDst for IPv4, IPv4-mapped and IPv6', async () => {
  const ns = makeNetns();
  const exec = (cmd: string, ...args: string[]) =>
    run('ip', ['netns', 'exec', ns.name, cmd, ...args]);
  // Only OUTPUT of this namespace's loopback traffic; the host's rules are never touched.
  exec(
    'iptables',
    ...'-t nat -A OUTPUT -p tcp -d 127.0.0.2 --dport 8080 -j REDIRECT --to-ports 15001'.split(' '),
  );
  exec(
    'iptables',
    ...'-t nat -A OUTPUT -p tcp -d 127.0.0.3 --dport 9090 -j REDIRECT --to-ports 15002'.split(' '),
  );
  exec(
    'ip6tables',
    ...'-t nat -A OUTPUT -p tcp -d ::1 --dport 8080 -j REDIRECT --to-ports 15002'.split(' '),
  );

  const seen: unknown[] = [];
  const capture = (socket: Socket) => {
    track(socket);
    seen.push(originalDst(socket));
    socket.end('captured');
  };
  const base = { netns: ns.path, mark: 0x100 } as const;
  // An IPv4-only listener and a dual-stack one ('::', ipv6Only false) like the agent's.
  track(await listenInNetns({ ...base, family: 4, host: '127.0.0.1', port: 15001 }, capture));
  track(await listenInNetns({ ...base, family: 6, host: '::', port: 15002 }, capture));

  const talk = async (family: 4 | 6, host: string, port: number) => {
    const client = track(await connectFromNetns({ netns: ns.path, family, host, port }));
    return readAll(client);
  };
  assert.equal(await talk(4, '127.0.0.2', 8080), 'captured');
  assert.equal(await talk(4, '127.0.0.3', 9090), 'captured');
  assert.equal(await talk(6, '::1', 8080), 'captured');
  assert.deepEqual(seen, [
    { address: '127.0.0.2', port: 8080, family: 4 },
    { address: '127.0.0.3', port: 9090, family: 4 },
    { address: '::1', port: 8080, family: 6 },
  ]);
});
