/** The top functions of a V8 .cpuprofile by self time, as text (npm run bench:profile). */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  samples: number[];
  startTime: number;
  endTime: number;
}

const IDLE = '(idle)';
const OWN_CODE = '/dist/daemon/';

function frameName(frame: CallFrame): string {
  const file = frame.url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, '');
  const name = frame.functionName || '(anonymous)';
  return file ? `${name} ${file}:${frame.lineNumber + 1}` : name;
}

/**
 * Self time per function over the samples that were not idle, largest first. The first line
 * says how busy the thread was over the whole profile.
 */
export function summarizeCpuProfile(profile: CpuProfile, top: number): string {
  const frames = new Map(profile.nodes.map((n) => [n.id, frameName(n.callFrame)]));
  const self = new Map<string, number>();
  let idle = 0;
  for (const id of profile.samples) {
    const name = frames.get(id) ?? '(unknown)';
    if (name === IDLE) idle += 1;
    else self.set(name, (self.get(name) ?? 0) + 1);
  }
  const busy = profile.samples.length - idle;
  const seconds = (profile.endTime - profile.startTime) / 1e6;
  const lines = [
    `${profile.samples.length} samples over ${seconds.toFixed(1)} s, ${((busy / Math.max(1, profile.samples.length)) * 100).toFixed(1)} % busy; self time as % of the busy samples:`,
  ];
  for (const [name, count] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top))
    lines.push(`${((count / Math.max(1, busy)) * 100).toFixed(1).padStart(5)} %  ${name}`);
  lines.push('by the nearest meshd function on the stack (its time and what it called):');
  for (const [name, count] of [...nearestOwnFrame(profile)]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top))
    lines.push(`${((count / Math.max(1, busy)) * 100).toFixed(1).padStart(5)} %  ${name}`);
  return `${lines.join('\n')}\n`;
}

/** Busy samples per nearest frame of meshd's own code on the sample's stack. */
function nearestOwnFrame(profile: CpuProfile): Map<string, number> {
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const owner = new Map<number, string>();
  const ownerOf = (id: number): string => {
    const known = owner.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    const up = parent.get(id);
    const name = !node
      ? '(no meshd frame)'
      : node.callFrame.url.includes(OWN_CODE)
        ? frameName(node.callFrame)
        : up === undefined
          ? '(no meshd frame)'
          : ownerOf(up);
    owner.set(id, name);
    return name;
  };
  const counts = new Map<string, number>();
  for (const id of profile.samples) {
    if (byId.get(id)?.callFrame.functionName === IDLE) continue;
    const name = ownerOf(id);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

export interface HeapProfileNode {
  callFrame: CallFrame;
  selfSize: number;
  children?: HeapProfileNode[];
}

/**
 * Bytes allocated per function from a sampling heap profile that kept collected objects
 * (what the young generation churns through, not what survives): by the allocating frame, and
 * by the nearest frame of meshd's own code on the stack (which of our calls led to it).
 */
export function summarizeHeapProfile(head: HeapProfileNode, top: number, units?: number): string {
  const leaf = new Map<string, number>();
  const own = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapProfileNode, ownFrame: string) => {
    const name = frameName(node.callFrame);
    const nearest = node.callFrame.url.includes(OWN_CODE) ? name : ownFrame;
    if (node.selfSize > 0) {
      total += node.selfSize;
      leaf.set(name, (leaf.get(name) ?? 0) + node.selfSize);
      own.set(nearest, (own.get(nearest) ?? 0) + node.selfSize);
    }
    for (const child of node.children ?? []) walk(child, nearest);
  };
  walk(head, '(no meshd frame)');
  const per = units ? `, ${Math.round(total / units)} B per unit of work (${units})` : '';
  const table = (title: string, sizes: Map<string, number>) => [
    title,
    ...[...sizes]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(
        ([n, bytes]) => `${((bytes / Math.max(1, total)) * 100).toFixed(1).padStart(5)} %  ${n}`,
      ),
  ];
  return `${[
    `${(total / 1024 / 1024).toFixed(1)} MiB allocated (sampled)${per}`,
    ...table('by allocating function:', leaf),
    ...table('by the nearest meshd function on the stack:', own),
  ].join('\n')}\n`;
}
