/**
 * What an agent's I/O syscalls looked like under load (npm run bench:profile -- --strace):
 * per syscall, how many calls and how many bytes each moved, from `strace -f -o` output.
 * The sizes answer "are the writes to the application coalesced?" better than counts alone.
 */

/** Size classes of a call's return value (bytes moved): class i holds values below BUCKETS[i]. */
const BUCKETS = [1, 1024, 16 * 1024, 16 * 1024 + 1, 64 * 1024 + 1, Number.POSITIVE_INFINITY];
const BUCKET_NAMES = ['0/err', '<1K', '<16K', '=16K', '<=64K', '>64K'];

interface SyscallStats {
  calls: number;
  bytes: number;
  buckets: number[];
}

const LINE =
  /^(?:\d+\s+)?(read|write|readv|writev|recvfrom|sendto|sendmsg|recvmsg)\(.*\)\s+=\s+(-?\d+)/;

function bucketOf(moved: number): number {
  return BUCKETS.findIndex((limit) => moved < limit);
}

export function parseStrace(text: string): Map<string, SyscallStats> {
  const stats = new Map<string, SyscallStats>();
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, name, ret] = m as unknown as [string, string, string];
    const moved = Number(ret);
    let s = stats.get(name);
    if (!s) {
      s = { calls: 0, bytes: 0, buckets: BUCKET_NAMES.map(() => 0) };
      stats.set(name, s);
    }
    s.calls++;
    if (moved > 0) s.bytes += moved;
    const b = bucketOf(moved);
    s.buckets[b] = (s.buckets[b] ?? 0) + 1;
  }
  return stats;
}

/** One line per syscall: calls, mean bytes, and the count in each size class. */
export function summarizeStrace(text: string): string {
  const rows = [...parseStrace(text)].sort((a, b) => b[1].calls - a[1].calls);
  if (rows.length === 0) return '(no read/write calls traced)';
  return rows
    .map(([name, s]) => {
      const mean = s.calls ? Math.round(s.bytes / s.calls) : 0;
      const classes = BUCKET_NAMES.map((n, i) => `${n} ${s.buckets[i]}`).join(', ');
      return `${name.padEnd(8)} ${String(s.calls).padStart(7)} calls, mean ${mean} B (${classes})`;
    })
    .join('\n');
}
