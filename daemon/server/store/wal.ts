/**
 * The file store's write-ahead log: one record per commit, appended and fdatasync'd before the
 * commit is acknowledged. A record is
 *
 *   uint32 BE  payload length (1 … MAX_RECORD_BYTES)
 *   uint32 BE  CRC-32 of the payload (zlib.crc32, the IEEE polynomial)
 *   payload    UTF-8 JSON: {"rev":N,"ops":[["p",key,value] | ["d",key], …]}
 *
 * Scanning tells a torn tail (a crash while appending: an incomplete header or record, or a
 * last record whose checksum fails, or zero-filled space) from damage in the middle (a bad
 * record followed by more data), which is an error: acknowledged data is never dropped silently.
 */
import { crc32 } from 'node:zlib';
import { StoreError } from './errors.js';

export const HEADER_BYTES = 8;
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export type WalOp = ['p', string, string] | ['d', string];

export interface WalRecord {
  rev: number;
  ops: WalOp[];
}

export function encodeRecord(record: WalRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(record), 'utf8');
  if (payload.length > MAX_RECORD_BYTES) {
    throw new StoreError(
      `a commit of ${payload.length} bytes is larger than the store's limit of ${MAX_RECORD_BYTES}`,
    );
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(crc32(payload), 4);
  payload.copy(out, HEADER_BYTES);
  return out;
}

export interface ScannedRecord {
  offset: number;
  record: WalRecord;
}

export interface WalScan {
  records: ScannedRecord[];
  /** Bytes of whole, valid records from the start; the file is truncated to this length. */
  validLength: number;
  /** Set when the tail after validLength was an incomplete or torn record. */
  torn?: { offset: number; bytes: number; reason: string };
}

function allZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

function corrupt(file: string, offset: number, reason: string): StoreError {
  return new StoreError(`${file} is corrupt at byte offset ${offset}: ${reason}`, {
    hint:
      'a record in the middle of the write-ahead log is damaged; restore the store directory from a backup ' +
      '(moving wal.log aside loses every commit after snapshot.json)',
  });
}

function parsePayload(file: string, offset: number, payload: Buffer): WalRecord {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch (cause) {
    throw corrupt(
      file,
      offset,
      `the record's checksum is valid but its JSON is not (${(cause as Error).message})`,
    );
  }
  const rec = value as WalRecord;
  const okOps =
    Array.isArray(rec?.ops) &&
    rec.ops.every(
      (op) =>
        Array.isArray(op) &&
        typeof op[1] === 'string' &&
        ((op[0] === 'p' && op.length === 3 && typeof op[2] === 'string') ||
          (op[0] === 'd' && op.length === 2)),
    );
  if (!Number.isSafeInteger(rec?.rev) || rec.rev < 1 || !okOps) {
    throw corrupt(file, offset, 'the record does not have the shape {rev, ops}');
  }
  return rec;
}

/** Reads every record of a WAL image; `file` names it in errors. */
export function scanWal(buf: Buffer, file: string): WalScan {
  const records: ScannedRecord[] = [];
  let offset = 0;
  const torn = (reason: string): WalScan => ({
    records,
    validLength: offset,
    torn: { offset, bytes: buf.length - offset, reason },
  });
  while (offset < buf.length) {
    const remaining = buf.length - offset;
    if (remaining < HEADER_BYTES) return torn('incomplete record header');
    const length = buf.readUInt32BE(offset);
    const sum = buf.readUInt32BE(offset + 4);
    if (length === 0 || length > MAX_RECORD_BYTES) {
      if (allZero(buf, offset)) return torn('zero-filled space after the last record');
      throw corrupt(file, offset, `impossible record length ${length}`);
    }
    const end = offset + HEADER_BYTES + length;
    if (end > buf.length)
      return torn(`incomplete record (${remaining} of ${HEADER_BYTES + length} bytes)`);
    const payload = buf.subarray(offset + HEADER_BYTES, end);
    if (crc32(payload) !== sum) {
      if (end === buf.length) return torn('the last record fails its checksum');
      throw corrupt(file, offset, 'the record fails its checksum and more records follow it');
    }
    records.push({ offset, record: parsePayload(file, offset, payload) });
    offset = end;
  }
  return { records, validLength: offset };
}
