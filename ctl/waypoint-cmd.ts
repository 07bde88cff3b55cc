/**
 * `meshctl waypoint apply|list|status|delete|generate`: create waypoints and bind namespaces to
 * them, see their replicas, what is bound to them and the policies they enforce, delete them
 * (not while something is bound, unless --force), and print a Kubernetes Deployment of replicas.
 * docs/waypoint.md "Operating waypoints".
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { MeshdError } from '../daemon/errors.js';
import {
  LABEL_USE_WAYPOINT,
  MeshState,
  type Namespace,
  type NamespacedName,
  type Resource,
  type TrafficType,
  validateResource,
  type Waypoint,
} from '../daemon/model/index.js';
import { meshdVersion } from '../daemon/paths.js';
import {
  ControlPlaneCallError,
  grpc,
  type RegistryClient,
  type ResourceRef,
} from '../daemon/proto/index.js';
import type { ConnectionFlags } from './config.js';
import { addConnectionOptions, withRegistry } from './connect.js';
import { renderManifests } from './install/kubernetes.js';
import { formatOutput, type OutputFormat, parseOutputFormat } from './output.js';
import { namespaceToEnroll, parseTrafficType, waypointToApply } from './waypoint/apply.js';
import { defaultWaypointImage, waypointDeployment } from './waypoint/generate.js';
import { waypointListTable, waypointStatusText } from './waypoint/render.js';
import { type BoundObject, waypointRows, waypointView } from './waypoint/view.js';

/** The whole registry as the agents see it (invalid entries skipped, as they skip them). */
export async function registryState(flags: ConnectionFlags): Promise<MeshState> {
  const resources = await withRegistry(
    flags,
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
  return state;
}

async function getOrUndefined<T extends Resource>(
  c: RegistryClient,
  ref: ResourceRef,
): Promise<T | undefined> {
  try {
    return JSON.parse((await c.get({ ref })).resource) as T;
  } catch (err) {
    if (err instanceof ControlPlaneCallError && err.status === grpc.status.NOT_FOUND)
      return undefined;
    throw err;
  }
}

const refText = (r: { kind: string; name: string; namespace?: string | undefined }) =>
  `${r.kind.toLowerCase()}/${r.name}${r.namespace ? ` -n ${r.namespace}` : ''}`;

/** How to undo each binding, once per namespace label. */
export function unbindHints(waypoint: NamespacedName, bound: readonly BoundObject[]): string[] {
  const hints = new Set<string>();
  for (const b of bound) {
    if (b.via === 'namespace label')
      hints.add(`meshctl label namespace ${waypoint.namespace} ${LABEL_USE_WAYPOINT}-`);
    else if (b.via === 'spec.waypoint')
      hints.add(`remove spec.waypoint from service ${b.name} and re-apply it`);
    else
      hints.add(
        `meshctl label ${b.kind.toLowerCase()} ${b.name} -n ${b.namespace} ${LABEL_USE_WAYPOINT}-`,
      );
  }
  return [...hints];
}

function nsOption(command: Command): Command {
  return command.requiredOption('-n, --namespace <ns>', "the Waypoint's namespace");
}

const replicasArg = (v: string): number => {
  if (!/^\d+$/.test(v) || Number(v) > 100) throw new InvalidArgumentError('0 to 100');
  return Number(v);
};

function registerApply(waypoint: Command): void {
  addConnectionOptions(
    nsOption(
      waypoint
        .command('apply')
        .description(
          'create or update a Waypoint; --enroll-namespace also sends the namespace through it',
        )
        .argument('<name>', 'the Waypoint (its replicas run as service account NAME)'),
    )
      .option('--for <traffic>', 'service, workload or all (default: service, or as it was)')
      .option(
        '--enroll-namespace',
        `label the Namespace ${LABEL_USE_WAYPOINT}=NAME (its other labels kept)`,
      ),
  ).action(
    async (
      name: string,
      opts: ConnectionFlags & { namespace: string; for?: string; enrollNamespace?: boolean },
    ) => {
      const trafficType: TrafficType | undefined =
        opts.for === undefined ? undefined : parseTrafficType(opts.for);
      const ref = { namespace: opts.namespace, name };
      await withRegistry(opts, async (c) => {
        for (let attempt = 0; ; attempt++) {
          const existing = await getOrUndefined<Waypoint>(c, { kind: 'Waypoint', ...ref });
          const resources: Resource[] = [waypointToApply(ref, existing, trafficType)];
          if (opts.enrollNamespace) {
            const ns = await getOrUndefined<Namespace>(c, {
              kind: 'Namespace',
              namespace: '',
              name: opts.namespace,
            });
            const labelled = namespaceToEnroll(opts.namespace, ns, name);
            if (labelled) resources.push(labelled);
          }
          try {
            const { results } = await c.apply({
              resources: resources.map((r) => JSON.stringify(r)),
              dryRun: false,
            });
            for (const r of results) console.log(`${refText(r.ref)} ${r.action}`);
            return;
          } catch (err) {
            // Someone changed it between our get and apply: read again, once.
            const conflict =
              err instanceof ControlPlaneCallError && err.status === grpc.status.ABORTED;
            if (attempt > 0 || !conflict) throw err;
          }
        }
      });
      if (!opts.enrollNamespace)
        console.log(
          `bind traffic to it: meshctl waypoint apply ${name} -n ${opts.namespace} --enroll-namespace, or label a Service ${LABEL_USE_WAYPOINT}=${name}`,
        );
      console.log(
        `it carries traffic once a replica runs: meshctl waypoint status ${name} -n ${opts.namespace}`,
      );
    },
  );
}

function registerList(waypoint: Command): void {
  addConnectionOptions(
    waypoint
      .command('list')
      .description('waypoints with their ready/registered replicas and what is bound to them')
      .option('-n, --namespace <ns>', 'only this namespace')
      .option('-A, --all-namespaces', 'every namespace (the default without -n)')
      .option('-o, --output <format>', 'table, json or yaml', parseOutputFormat, 'table'),
  ).action(
    async (
      opts: ConnectionFlags & { namespace?: string; allNamespaces?: boolean; output: OutputFormat },
    ) => {
      const state = await registryState(opts);
      const rows = waypointRows(state, opts.allNamespaces ? undefined : opts.namespace);
      console.log(formatOutput(opts.output, rows, () => waypointListTable(rows)));
    },
  );
}

function registerStatus(waypoint: Command): void {
  addConnectionOptions(
    nsOption(
      waypoint
        .command('status')
        .description(
          'one waypoint: its replicas, what is bound to it and how, its policies, its problems',
        )
        .argument('<name>', 'the Waypoint'),
    ).option('-o, --output <format>', 'table (text), json or yaml', parseOutputFormat, 'table'),
  ).action(
    async (name: string, opts: ConnectionFlags & { namespace: string; output: OutputFormat }) => {
      const state = await registryState(opts);
      const view = waypointView(state, { namespace: opts.namespace, name });
      if (view.trafficType === undefined && view.bound.length === 0 && view.replicas.length === 0) {
        throw new MeshdError(
          'MESHD_E_NOT_FOUND',
          `waypoint ${opts.namespace}/${name} does not exist, and nothing is bound to it`,
          {
            hint: `see "meshctl waypoint list -A"; create it: meshctl waypoint apply ${name} -n ${opts.namespace}`,
          },
        );
      }
      console.log(formatOutput(opts.output, view, () => waypointStatusText(view)));
      if (view.problems.some((p) => p.severity === 'fail')) process.exitCode = 1;
    },
  );
}

function registerDelete(waypoint: Command): void {
  addConnectionOptions(
    nsOption(
      waypoint
        .command('delete')
        .description('delete a Waypoint; refused while something is bound to it, unless --force')
        .argument('<name>', 'the Waypoint'),
    ).option('--force', 'delete even though traffic bound to it will then be refused'),
  ).action(async (name: string, opts: ConnectionFlags & { namespace: string; force?: boolean }) => {
    const ref = { namespace: opts.namespace, name };
    const state = await registryState(opts);
    if (!state.get({ kind: 'Waypoint', ...ref })) {
      throw new MeshdError(
        'MESHD_E_NOT_FOUND',
        `waypoint ${opts.namespace}/${name} does not exist`,
        {
          hint: `see "meshctl waypoint list -n ${opts.namespace}"`,
        },
      );
    }
    const { bound } = waypointView(state, ref);
    const list = bound.map((b) => `${b.kind.toLowerCase()} ${b.name} (${b.via})`).join(', ');
    if (bound.length > 0 && !opts.force) {
      throw new MeshdError(
        'MESHD_E_BAD_REQUEST',
        `refusing to delete waypoint ${opts.namespace}/${name}: ${list} ${bound.length === 1 ? 'is' : 'are'} bound to it, and their traffic would be refused (bindings fail closed)`,
        {
          hint: `remove the bindings first (${unbindHints(ref, bound).join('; ')}), or pass --force`,
        },
      );
    }
    await withRegistry(opts, (c) =>
      c.delete({ ref: { kind: 'Waypoint', ...ref }, resourceVersion: '' }),
    );
    console.log(`waypoint/${name} -n ${opts.namespace} deleted`);
    if (bound.length > 0)
      console.error(
        `warning: still bound to it, now refused until it exists again: ${list}; ${unbindHints(ref, bound).join('; ')}`,
      );
  });
}

function registerGenerate(waypoint: Command): void {
  nsOption(
    waypoint
      .command('generate')
      .description(
        "print a Kubernetes Deployment of the waypoint's replicas (each registers through its node's agent)",
      )
      .argument('<name>', 'the Waypoint'),
  )
    .option('--replicas <n>', 'how many replicas', replicasArg, 2)
    .option('--image <image>', 'meshd image (default ghcr.io/meshd/meshd:<version>)')
    .action((name: string, opts: { namespace: string; replicas: number; image?: string }) => {
      const version = meshdVersion();
      // The names must be a Waypoint's (DNS labels, not "none").
      waypointToApply({ namespace: opts.namespace, name }, undefined, undefined);
      const doc = waypointDeployment({
        waypoint: { namespace: opts.namespace, name },
        replicas: opts.replicas,
        image: opts.image ?? defaultWaypointImage(version),
      });
      process.stdout.write(
        renderManifests(
          [doc],
          [
            `meshd ${version}: replicas of waypoint ${opts.namespace}/${name}, generated by meshctl waypoint generate.`,
            'Needs the meshd agent DaemonSet on the nodes (meshctl install kubernetes) and the',
            `Waypoint itself (meshctl waypoint apply ${name} -n ${opts.namespace}). The pods mount the`,
            "agent's socket (hostPath /run/meshd) and run as root without capabilities: the",
            "namespace's Pod Security level must allow hostPath volumes (privileged).",
          ],
        ),
      );
    });
}

export function registerWaypointCommands(program: Command): void {
  const waypoint = program
    .command('waypoint')
    .description('L7 waypoints: create, list, inspect, delete, and generate their deployment');
  registerApply(waypoint);
  registerList(waypoint);
  registerStatus(waypoint);
  registerDelete(waypoint);
  registerGenerate(waypoint);
}
