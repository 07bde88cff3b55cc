/**
 * Reads a pcap file (Ethernet, IPv4/IPv6, TCP) and tells, per TCP flow whose SYN was captured,
 * whether each direction is a sequence of TLS records from its first byte: the proof that a
 * case carries TLS on the underlay, or plaintext. Flows joined mid-stream are only counted.
 */

export interface FlowVerdict {
  flow: string;
  bytes: number;
  /** Every byte of both directions parsed as whole TLS records. */
  tls: boolean;
  records: Record<string, number>;
  /** This flow's handshake selected TLS 1.3. */
  tls13: boolean;
}

export interface PcapAnalysis {
  packets: number;
  flows: FlowVerdict[];
  flowsJoinedMidStream: number;
  /** supported_versions = TLS 1.3 (0x002b 0002 0304) in a handshake record (the ServerHello). */
  tls13: boolean;
}

const RECORD_TYPES: Record<number, string> = {
  20: 'change_cipher_spec',
  21: 'alert',
  22: 'handshake',
  23: 'application_data',
};
const TLS13_SELECTED = Buffer.from([0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);

interface Direction {
  nextSeq: number | undefined;
  chunks: Buffer[];
}

interface Segment {
  key: string;
  reverseKey: string;
  seq: number;
  syn: boolean;
  payload: Buffer;
}

function* packets(file: Buffer): Generator<Buffer> {
  const magic = file.readUInt32LE(0);
  const littleEndian = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!littleEndian && file.readUInt32BE(0) !== 0xa1b2c3d4 && file.readUInt32BE(0) !== 0xa1b23c4d)
    throw new Error('not a pcap file');
  const u32 = (at: number) => (littleEndian ? file.readUInt32LE(at) : file.readUInt32BE(at));
  if (u32(20) !== 1) throw new Error(`pcap link type ${u32(20)} is not Ethernet`);
  for (let at = 24; at + 16 <= file.length; ) {
    const captured = u32(at + 8);
    yield file.subarray(at + 16, at + 16 + captured);
    at += 16 + captured;
  }
}

function tcpSegment(frame: Buffer): Segment | undefined {
  let at = 12;
  let etherType = frame.readUInt16BE(at);
  while (etherType === 0x8100 && frame.length > at + 6) {
    at += 4;
    etherType = frame.readUInt16BE(at);
  }
  at += 2;
  let src: string;
  let dst: string;
  let tcpAt: number;
  let ipEnd: number;
  if (etherType === 0x0800) {
    if (frame[at + 9] !== 6) return undefined;
    src = [...frame.subarray(at + 12, at + 16)].join('.');
    dst = [...frame.subarray(at + 16, at + 20)].join('.');
    tcpAt = at + ((frame[at] ?? 0) & 0x0f) * 4;
    ipEnd = at + frame.readUInt16BE(at + 2);
  } else if (etherType === 0x86dd) {
    if (frame[at + 6] !== 6) return undefined;
    src = frame.subarray(at + 8, at + 24).toString('hex');
    dst = frame.subarray(at + 24, at + 40).toString('hex');
    tcpAt = at + 40;
    ipEnd = tcpAt + frame.readUInt16BE(at + 4);
  } else return undefined;
  const sport = frame.readUInt16BE(tcpAt);
  const dport = frame.readUInt16BE(tcpAt + 2);
  const flags = frame[tcpAt + 13] ?? 0;
  const payloadAt = tcpAt + ((frame[tcpAt + 12] ?? 0) >> 4) * 4;
  return {
    key: `${src}:${sport}>${dst}:${dport}`,
    reverseKey: `${dst}:${dport}>${src}:${sport}`,
    seq: frame.readUInt32BE(tcpAt + 4),
    syn: (flags & 0x02) !== 0,
    payload: frame.subarray(payloadAt, Math.min(ipEnd, frame.length)),
  };
}

/** Parses a byte stream as TLS records; undefined when it is not one. */
function tlsRecords(stream: Buffer, counts: Record<string, number>, handshakes: Buffer[]): boolean {
  let at = 0;
  while (at + 5 <= stream.length) {
    const type = RECORD_TYPES[stream[at] ?? 0];
    const major = stream[at + 1];
    const length = stream.readUInt16BE(at + 3);
    if (!type || major !== 3 || length > 16_384 + 256) return false;
    if (type === 'handshake') handshakes.push(stream.subarray(at + 5, at + 5 + length));
    counts[type] = (counts[type] ?? 0) + 1;
    at += 5 + length;
  }
  // A record cut off by the end of the capture still counts as TLS.
  return true;
}

export function analysePcap(file: Buffer): PcapAnalysis {
  const directions = new Map<string, Direction>();
  const flowOrder: string[] = [];
  let count = 0;
  for (const frame of packets(file)) {
    count++;
    const segment = tcpSegment(frame);
    if (!segment) continue;
    let direction = directions.get(segment.key);
    if (!direction) {
      direction = { nextSeq: undefined, chunks: [] };
      directions.set(segment.key, direction);
      if (!directions.has(segment.reverseKey)) flowOrder.push(segment.key);
    }
    if (segment.syn) {
      direction.nextSeq = (segment.seq + 1) >>> 0;
      continue;
    }
    // In-order bytes only: retransmissions and anything before the SYN are skipped.
    if (direction.nextSeq === segment.seq && segment.payload.length > 0) {
      direction.chunks.push(segment.payload);
      direction.nextSeq = (segment.seq + segment.payload.length) >>> 0;
    }
  }
  const flows: FlowVerdict[] = [];
  let joined = 0;
  let tls13 = false;
  for (const key of flowOrder) {
    const [a, b] = key.split('>');
    const forward = directions.get(key);
    const backward = directions.get(`${b}>${a}`);
    if (forward?.nextSeq === undefined || backward?.nextSeq === undefined) {
      joined++;
      continue;
    }
    const records: Record<string, number> = {};
    const handshakes: Buffer[] = [];
    const streams = [Buffer.concat(forward.chunks), Buffer.concat(backward.chunks)];
    const bytes = streams.reduce((n, s) => n + s.length, 0);
    if (bytes === 0) continue;
    const tls = streams.every((s) => tlsRecords(s, records, handshakes));
    const flowTls13 = tls && handshakes.some((h) => h.includes(TLS13_SELECTED));
    if (flowTls13) tls13 = true;
    flows.push({ flow: key, bytes, tls, records, tls13: flowTls13 });
  }
  return { packets: count, flows, flowsJoinedMidStream: joined, tls13 };
}
