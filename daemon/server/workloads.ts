/**
 * Node authorization's source of truth: which workload identities run on which node. One small
 * interface, so the control-plane registry can take over from the static file below without
 * touching the CA code.
 */
import { readFile } from 'node:fs/promises';
import { parse } from '../config.js';
import { MeshdError } from '../errors.js';
import { classify, parseSpiffeId } from '../identity/index.js';

export interface WorkloadDirectory {
  /** The SPIFFE IDs of the workloads registered on `node` (empty if none or unknown node). */
  identitiesOn(node: string): Promise<ReadonlySet<string>>;
}

const EMPTY: ReadonlySet<string> = new Set();

/**
 * A directory read from a JSON file `{"nodes": {"node-1": ["spiffe://<td>/ns/<ns>/sa/<sa>", …]}}`
 * (no file: no workloads). Every node must be a DNS label and every ID a workload ID of the
 * mesh's trust domain; anything else refuses the whole file (MESHD_E_SERVER_STATE).
 */
export class StaticWorkloadDirectory implements WorkloadDirectory {
  readonly #nodes: ReadonlyMap<string, ReadonlySet<string>>;

  constructor(nodes: ReadonlyMap<string, ReadonlySet<string>> = new Map()) {
    this.#nodes = nodes;
  }

  static async load(
    file: string | undefined,
    trustDomain: string,
  ): Promise<StaticWorkloadDirectory> {
    if (file === undefined) return new StaticWorkloadDirectory();
    const bad = (why: string, cause?: unknown) =>
      new MeshdError('MESHD_E_SERVER_STATE', `workloads file ${file}: ${why}`, {
        cause,
        hint: 'expected {"nodes": {"<node>": ["spiffe://<td>/ns/<ns>/sa/<sa>", ...]}}',
      });
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch (cause) {
      throw bad(cause instanceof SyntaxError ? 'not valid JSON' : 'cannot be read', cause);
    }
    const nodes = (parsed as { nodes?: unknown } | null)?.nodes;
    if (!nodes || typeof nodes !== 'object' || Array.isArray(nodes)) {
      throw bad('"nodes" must be an object of node name to a list of SPIFFE IDs');
    }
    const out = new Map<string, ReadonlySet<string>>();
    for (const [node, ids] of Object.entries(nodes)) {
      try {
        parse.dnsLabel(node);
      } catch (cause) {
        throw bad(`nodes["${node}"]: ${(cause as Error).message}`, cause);
      }
      if (!Array.isArray(ids)) throw bad(`nodes["${node}"] must be a list of SPIFFE IDs`);
      const set = new Set<string>();
      ids.forEach((id: unknown, i) => {
        const where = `nodes["${node}"][${i}]`;
        if (typeof id !== 'string') throw bad(`${where} must be a string`);
        let kind: string;
        try {
          kind = classify(parseSpiffeId(id, trustDomain)).kind;
        } catch (cause) {
          throw bad(`${where}: ${(cause as Error).message}`, cause);
        }
        if (kind !== 'workload') {
          throw bad(`${where}: "${id}" is not a workload ID (spiffe://<td>/ns/<ns>/sa/<sa>)`);
        }
        set.add(id);
      });
      out.set(node, set);
    }
    return new StaticWorkloadDirectory(out);
  }

  async identitiesOn(node: string): Promise<ReadonlySet<string>> {
    return this.#nodes.get(node) ?? EMPTY;
  }

  /** Number of (node, identity) pairs, for the log. */
  get size(): number {
    let n = 0;
    for (const ids of this.#nodes.values()) n += ids.size;
    return n;
  }
}
