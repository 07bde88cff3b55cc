/**
 * Just enough DER (ITU-T X.690) for the agent's side of identity: reading a certificate's
 * extensions (svid.ts) and writing a PKCS#10 request (csr.ts). The CA's side keeps pkijs,
 * which the agent then never loads (docs/benchmarks.md, "Agent memory").
 */

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  sequence: 0x30,
  set: 0x31,
} as const;

export class DerError extends Error {}

export interface Tlv {
  tag: number;
  /** The contents octets: a view into the input, not a copy. */
  value: Uint8Array;
}

function byteAt(der: Uint8Array, at: number): number {
  const byte = der[at];
  if (byte === undefined) throw new DerError('truncated element');
  return byte;
}

/** The elements `der` holds one after another; throws DerError unless they fill it exactly. */
export function readAll(der: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let at = 0;
  while (at < der.length) {
    const tag = byteAt(der, at++);
    if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags do not occur here');
    let length = byteAt(der, at++);
    if (length & 0x80) {
      const octets = length & 0x7f;
      if (octets === 0 || octets > 4) throw new DerError('indefinite or oversized length');
      length = 0;
      for (let i = 0; i < octets; i++) length = length * 256 + byteAt(der, at++);
    }
    if (at + length > der.length) throw new DerError('an element runs past its container');
    out.push({ tag, value: der.subarray(at, at + length) });
    at += length;
  }
  return out;
}

/** The single element `der` holds, which must carry `tag`. */
export function readOne(der: Uint8Array, tag: number): Tlv {
  const [only, ...rest] = readAll(der);
  if (!only || rest.length > 0 || only.tag !== tag) {
    throw new DerError(`expected exactly one element with tag 0x${tag.toString(16)}`);
  }
  return only;
}

export function decodeOid(value: Uint8Array): string {
  const arcs: number[] = [];
  let arc = 0;
  for (const byte of value) {
    arc = arc * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(arc);
      arc = 0;
    }
  }
  const [first = 0, ...rest] = arcs;
  const top = Math.min(2, Math.floor(first / 40));
  return [top, first - 40 * top, ...rest].join('.');
}

/** One element: tag, definite length, contents. */
export function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  const length = contents.reduce((n, c) => n + c.length, 0);
  const lengthOctets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256))
    lengthOctets.unshift(rest & 0xff);
  const header = length < 0x80 ? [tag, length] : [tag, 0x80 | lengthOctets.length, ...lengthOctets];
  return Buffer.concat([Uint8Array.from(header), ...contents]);
}

export function oid(dotted: string): Uint8Array {
  const [top = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const octets: number[] = [];
  for (const arc of [top * 40 + second, ...rest]) {
    const groups = [arc & 0x7f];
    for (let high = Math.floor(arc / 128); high > 0; high = Math.floor(high / 128)) {
      groups.unshift((high & 0x7f) | 0x80);
    }
    octets.push(...groups);
  }
  return tlv(TAG.oid, Uint8Array.from(octets));
}
