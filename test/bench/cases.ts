/**
 * The cases measured, all between a client workload on node 1 and a server workload on node 2
 * of one lab: `direct` (the released pair n1-w2 → n2-w2, no proxy), `meshd` (the enrolled pair
 * n1-w1 → n2-w1 through the agents and HBONE), and each peer (n1-w2 → the peer's client side on
 * node 1 → mTLS across the underlay → its server side on node 2 → n2-w2).
 */
import type { Lab } from '../../ctl/lab/index.js';
import { type BenchService, PEERS, type PeerDefinition, peerPort } from './peers.js';
import { commandLine, commandName, netnsPids } from './proc-stats.js';
import type { Target } from './tools.js';

export const MESH_CLIENT = 'n1-w1';
export const MESH_SERVER = 'n2-w1';
export const PLAIN_CLIENT = 'n1-w2';
export const PLAIN_SERVER = 'n2-w2';
export const CLIENT_NODE = 'n1';
export const SERVER_NODE = 'n2';

export interface BenchCase {
  name: string;
  description: string;
  target: (service: BenchService) => Target;
  /** The proxy processes of each node (none for direct). */
  processes: () => Promise<Record<string, number[]>>;
  peer?: PeerDefinition;
}

async function pidsOf(lab: Lab, match: (pid: number) => boolean) {
  const sides: Record<string, number[]> = {};
  for (const node of [CLIENT_NODE, SERVER_NODE])
    sides[node] = (await netnsPids(lab.member(node).netns)).filter(match);
  return sides;
}

/** The `meshd agent` process (node 1 also runs `meshd server`). */
export const isAgent = (pid: number) => {
  const argv = commandLine(pid);
  return argv.some((a) => a.endsWith('daemon/main.js')) && argv.includes('agent');
};

export function benchCases(lab: Lab): BenchCase[] {
  const direct: BenchCase = {
    name: 'direct',
    description: `${PLAIN_CLIENT} → ${PLAIN_SERVER}, no proxy (the ceiling)`,
    target: (service) => ({
      client: PLAIN_CLIENT,
      host: lab.member(PLAIN_SERVER).ipv4,
      port: service.port,
    }),
    processes: async () => ({}),
  };
  const meshd: BenchCase = {
    name: 'meshd',
    description: `${MESH_CLIENT} → ${MESH_SERVER}, both enrolled: captured by the node agents, HBONE (HTTP/2 CONNECT over mTLS) across the underlay`,
    target: (service) => ({
      client: MESH_CLIENT,
      host: lab.member(MESH_SERVER).ipv4,
      port: service.port,
    }),
    processes: () => pidsOf(lab, isAgent),
  };
  const peers = PEERS.map(
    (peer): BenchCase => ({
      name: peer.name,
      description: `${PLAIN_CLIENT} → ${peer.name} client side on ${CLIENT_NODE} → mTLS → ${peer.name} server side on ${SERVER_NODE} → ${PLAIN_SERVER}`,
      target: (service) => ({
        client: PLAIN_CLIENT,
        host: lab.member(CLIENT_NODE).ipv4,
        port: peerPort(peer, service),
      }),
      processes: () => pidsOf(lab, (pid) => commandName(pid) === peer.comm),
      peer,
    }),
  );
  return [direct, meshd, ...peers];
}
