/**
 * `meshctl why SRC DST:PORT`: would this connection be allowed, over which path, and which
 * policy decides — computed from the registry with the same evaluation the agents run.
 */
import type { Command } from 'commander';
import { MeshdError } from '../daemon/errors.js';
import {
  MeshState,
  type Resource,
  validateResource,
  type Workload,
  workloadIdentity,
} from '../daemon/model/index.js';
import { type Decision, evaluate } from '../daemon/policy/index.js';
import { loadAdminCredentials } from './client.js';
import type { ConnectionFlags } from './config.js';
import { addConnectionOptions, withRegistry } from './connect.js';
import { connectionOrLab } from './lab-context.js';
import { formatOutput, type OutputFormat, parseOutputFormat } from './output.js';

export interface WhyAnswer {
  source: string;
  destination: string;
  path: 'hbone' | 'passthrough' | 'plaintext-inbound' | 'direct';
  allowed: boolean;
  policy?: string;
  reason: string;
  service?: string;
  endpoint?: string;
}

export function findWorkload(
  state: MeshState,
  ref: string,
  namespace: string,
): Workload | undefined {
  if (/^[\d.]+$|:/.test(ref)) return state.workloadByIp(ref);
  const [ns, name] = ref.includes('/') ? ref.split('/', 2) : [namespace, ref];
  return state.get({ kind: 'Workload', namespace: ns ?? namespace, name: name ?? ref });
}

export function splitTarget(target: string): { host: string; port: number } {
  const m = /^\[(.+)\]:(\d+)$/.exec(target) ?? /^(.+):(\d+)$/.exec(target);
  if (!m?.[1] || !m[2])
    throw new MeshdError(
      'MESHD_E_BAD_REQUEST',
      `"${target}" is not HOST:PORT (IPs in brackets for IPv6)`,
    );
  return { host: m[1], port: Number(m[2]) };
}

/**
 * Pure: the destination agent's L4 decision on a connection to `target`'s `port`, as the agent
 * runs it (PeerAuthentication, then AuthorizationPolicy).
 */
export function inboundDecision(
  state: MeshState,
  target: Workload,
  conn: { sourceIdentity?: string; sourceIp: string; port: number },
): Decision {
  const ref = { namespace: target.metadata.namespace ?? '', name: target.metadata.name };
  return evaluate(
    { policies: state.authorizationPoliciesFor(ref), mtls: state.peerAuthenticationFor(ref) },
    {
      ...(conn.sourceIdentity ? { sourceIdentity: conn.sourceIdentity } : {}),
      sourceIp: conn.sourceIp,
      destinationIp: target.spec.addresses[0] ?? '',
      destinationPort: conn.port,
    },
  );
}

/** Pure: the answer for one source and destination against a state. */
export function explain(
  state: MeshState,
  src: string,
  dst: string,
  options: { namespace?: string; trustDomain: string },
): WhyAnswer {
  const namespace = options.namespace ?? 'default';
  const source = findWorkload(state, src, namespace);
  const sourceIp = source?.spec.addresses[0] ?? (/^[\d.:]+$/.test(src) ? src : '');
  if (!sourceIp)
    throw new MeshdError(
      'MESHD_E_NOT_FOUND',
      `source ${src} is neither a registered workload nor an IP`,
    );
  const { host, port } = splitTarget(dst);
  const service = state.serviceAt(host, port);
  let target = service ? undefined : findWorkload(state, host, namespace);
  let targetPort = port;
  if (service) {
    const key = {
      namespace: service.service.metadata.namespace ?? '',
      name: service.service.metadata.name,
    };
    target = state.endpoints(key)[0];
    targetPort = service.port.targetPort ?? port;
  }
  const srcName = source ? `${source.metadata.namespace}/${source.metadata.name}` : sourceIp;
  const base = {
    source: srcName,
    destination: target
      ? `${target.metadata.namespace}/${target.metadata.name}:${targetPort}`
      : dst,
    ...(service
      ? { service: `${service.service.metadata.namespace}/${service.service.metadata.name}` }
      : {}),
    ...(target && service ? { endpoint: `${target.spec.addresses[0]}:${targetPort}` } : {}),
  };
  if (service && !target)
    return { ...base, path: 'direct', allowed: false, reason: 'the service has no endpoints' };
  const srcMeshed = source !== undefined && state.isEnrolled(source);
  const dstMeshed = target !== undefined && state.isEnrolled(target);
  if (!dstMeshed || target === undefined) {
    return {
      ...base,
      path: srcMeshed ? 'passthrough' : 'direct',
      allowed: true,
      reason: 'the destination is not in the mesh: no mesh policy applies',
    };
  }
  const decision = inboundDecision(state, target, {
    ...(srcMeshed && source
      ? { sourceIdentity: workloadIdentity(source, options.trustDomain) }
      : {}),
    sourceIp,
    port: targetPort,
  });
  return {
    ...base,
    path: srcMeshed ? 'hbone' : 'plaintext-inbound',
    allowed: decision.allowed,
    reason: decision.reason,
    ...(decision.policy ? { policy: decision.policy } : {}),
  };
}

function whyText(answer: WhyAnswer): string {
  const verdict = answer.allowed ? 'ALLOW' : 'DENY';
  return [
    `${answer.source} -> ${answer.destination}${answer.service ? ` (service ${answer.service}, endpoint ${answer.endpoint})` : ''}`,
    `path:     ${answer.path}`,
    `decision: ${verdict}${answer.policy ? ` by ${answer.policy}` : ''} (${answer.reason})`,
  ].join('\n');
}

const collect = (value: string, previous: string[]) => [...previous, value];

interface WhyFlags extends ConnectionFlags {
  namespace: string;
  output: OutputFormat;
  method?: string;
  path?: string;
  header: string[];
}

export function registerWhyCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('why')
      .description(
        'would SRC reach DST:PORT: the path through agents and waypoints, and which policy decides at each hop',
      )
      .argument('<source>', 'workload (ns/name or name with -n) or IP')
      .argument('<destination>', 'IP:PORT, service VIP:PORT, or workload name:PORT')
      .option('-n, --namespace <ns>', 'namespace for bare workload names', 'default')
      .option('--method <method>', "HTTP method for a waypoint's L7 policy (default GET)")
      .option('--path <path>', "HTTP path for a waypoint's L7 policy (default /)")
      .option('--header <name=value>', 'HTTP request header (repeatable)', collect, [])
      .option('-o, --output <format>', 'table (text), json or yaml', parseOutputFormat, 'table'),
  ).action(async (src: string, dst: string, opts: WhyFlags) => {
    const resources = await withRegistry(
      opts,
      async (c) => (await c.list({ kind: '', namespace: '' })).resources,
    );
    const state = new MeshState();
    state.replaceAll(
      resources.flatMap((r) => {
        const v = validateResource(JSON.parse(r));
        return v.ok ? [v.resource as Resource] : [];
      }),
      0,
    );
    const { trustDomain } = loadAdminCredentials(connectionOrLab(opts).caDir);
    // Loaded here: the agent's and waypoint's public faces are more than meshctl needs to start.
    const { needsHops, parseHeaders, tracePath, traceText } = await import('./why-path.js');
    const request = {
      method: opts.method ?? 'GET',
      path: opts.path ?? '/',
      headers: parseHeaders(opts.header),
      given: opts.method !== undefined || opts.path !== undefined,
    };
    const trace = tracePath(state, src, dst, { namespace: opts.namespace, trustDomain, request });
    if (needsHops(trace)) {
      console.log(formatOutput(opts.output, trace, () => traceText(trace)));
      return;
    }
    const answer = explain(state, src, dst, { namespace: opts.namespace, trustDomain });
    console.log(formatOutput(opts.output, answer, () => whyText(answer)));
  });
}
