/** The top functions of a V8 .cpuprofile by self time, as text (npm run bench:profile). */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  samples: number[];
  startTime: number;
  endTime: number;
}

const IDLE = '(idle)';

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
  return `${lines.join('\n')}\n`;
}
