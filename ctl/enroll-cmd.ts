/**
 * `meshctl label`, `meshctl enroll`, `meshctl release`: change labels on registry resources.
 * Enrollment is a label (DESIGN §7): `meshd.io/dataplane-mode=ambient` on a Namespace or a
 * Workload captures it; `none` on a Workload opts it out of an enrolled namespace. Agents apply
 * a change to running workloads within a moment; nothing restarts.
 */
import type { Command } from 'commander';
import { MeshdError } from '../daemon/errors.js';
import {
  LABEL_DATAPLANE_MODE,
  matches,
  parseLabelSelector,
  type Resource,
} from '../daemon/model/index.js';
import {
  ControlPlaneCallError,
  grpc,
  type RegistryClient,
  type ResourceRef,
} from '../daemon/proto/index.js';
import type { ConnectionFlags } from './config.js';
import { addConnectionOptions, withRegistry } from './connect.js';
import { parseKind } from './resource-cmd.js';

type LabelChange = Record<string, string | null>; // null: remove

/** `key=value` sets, `key-` removes. */
export function parseLabelChanges(args: string[]): LabelChange {
  const change: LabelChange = {};
  for (const arg of args) {
    const remove = /^([^=]+)-$/.exec(arg);
    const set = /^([^=]+)=(.*)$/.exec(arg);
    if (remove?.[1]) change[remove[1]] = null;
    else if (set?.[1] !== undefined) change[set[1]] = set[2] ?? '';
    else throw new MeshdError('MESHD_E_BAD_REQUEST', `"${arg}" is neither key=value nor key-`);
  }
  return change;
}

function relabel(resource: Resource, change: LabelChange): Resource | undefined {
  const labels: Record<string, string> = { ...(resource.metadata.labels ?? {}) };
  let changed = false;
  for (const [key, value] of Object.entries(change)) {
    if (value === null ? key in labels : labels[key] !== value) changed = true;
    if (value === null) delete labels[key];
    else labels[key] = value;
  }
  return changed
    ? ({ ...resource, metadata: { ...resource.metadata, labels } } as Resource)
    : undefined;
}

async function targets(
  c: RegistryClient,
  kind: string,
  name: string | undefined,
  namespace: string,
  selector: string | undefined,
): Promise<Resource[]> {
  if (name) {
    const ref: ResourceRef = { kind, namespace: kind === 'Namespace' ? '' : namespace, name };
    return [JSON.parse((await c.get({ ref })).resource) as Resource];
  }
  const { resources } = await c.list({ kind, namespace: kind === 'Namespace' ? '' : namespace });
  const all = resources.map((r) => JSON.parse(r) as Resource);
  if (!selector)
    throw new MeshdError('MESHD_E_BAD_REQUEST', `name a ${kind} or give a selector (-l app=web)`);
  const parsed = parseLabelSelector(selector);
  return all.filter((r) => matches(parsed, r.metadata.labels ?? {}));
}

/** Applies the change to each target, each with its resourceVersion (retried once on a conflict). */
async function applyLabels(
  flags: ConnectionFlags,
  find: (c: RegistryClient) => Promise<Resource[]>,
  change: LabelChange,
): Promise<void> {
  await withRegistry(flags, async (c) => {
    for (let attempt = 0; ; attempt++) {
      const changed = (await find(c)).flatMap((r) => relabel(r, change) ?? []);
      if (changed.length === 0) {
        console.log('nothing to change');
        return;
      }
      try {
        const { results } = await c.apply({
          resources: changed.map((r) => JSON.stringify(r)),
          dryRun: false,
        });
        for (const r of results)
          console.log(
            `${r.ref.kind.toLowerCase()}/${r.ref.name}${r.ref.namespace ? ` -n ${r.ref.namespace}` : ''} labeled`,
          );
        return;
      } catch (err) {
        if (
          attempt > 0 ||
          !(err instanceof ControlPlaneCallError && err.status === grpc.status.ABORTED)
        )
          throw err;
      }
    }
  });
}

interface TargetOptions extends ConnectionFlags {
  namespace?: string;
  selector?: string;
}

function targetOptions(command: Command): Command {
  return addConnectionOptions(
    command
      .option('-n, --namespace <ns>', 'the namespace')
      .option(
        '-l, --selector <selector>',
        'workloads matching a label selector (app=web,tier in (a,b))',
      ),
  );
}

/** Namespace alone (-n shop) means the Namespace; a workload name or -l means Workloads. */
function scope(
  name: string | undefined,
  opts: TargetOptions,
): { kind: string; name: string | undefined; namespace: string } {
  if (!name && !opts.selector) {
    if (!opts.namespace)
      throw new MeshdError(
        'MESHD_E_BAD_REQUEST',
        'give -n NAMESPACE, a workload NAME (with -n), or -l SELECTOR',
      );
    return { kind: 'Namespace', name: opts.namespace, namespace: '' };
  }
  return { kind: 'Workload', name, namespace: opts.namespace ?? 'default' };
}

export function registerEnrollCommands(program: Command): void {
  addConnectionOptions(
    program
      .command('label')
      .description('set (key=value) or remove (key-) labels of a resource, or of every match of -l')
      .argument('<kind>', 'resource kind')
      .argument('[name]', 'resource name (or use -l)')
      .argument('<changes...>', 'key=value or key-')
      .option('-n, --namespace <ns>', 'the namespace', 'default')
      .option('-l, --selector <selector>', 'every resource of the kind matching this selector'),
  ).action(
    async (
      kindArg: string,
      name: string | undefined,
      changes: string[],
      opts: TargetOptions & { namespace: string },
    ) => {
      const kind = parseKind(kindArg);
      const change = parseLabelChanges(changes);
      await applyLabels(
        opts,
        (c) => targets(c, kind, opts.selector ? undefined : name, opts.namespace, opts.selector),
        change,
      );
    },
  );

  targetOptions(
    program
      .command('enroll')
      .description('put a namespace (-n shop) or workloads (NAME or -l) into the mesh, live')
      .argument('[workload]', 'a workload name'),
  ).action(async (name: string | undefined, opts: TargetOptions) => {
    const s = scope(name, opts);
    await applyLabels(opts, (c) => targets(c, s.kind, s.name, s.namespace, opts.selector), {
      [LABEL_DATAPLANE_MODE]: 'ambient',
    });
  });

  targetOptions(
    program
      .command('release')
      .description(
        'take a namespace (-n shop) or workloads (NAME or -l: marked none) out of the mesh, live',
      )
      .argument('[workload]', 'a workload name'),
  ).action(async (name: string | undefined, opts: TargetOptions) => {
    const s = scope(name, opts);
    const change =
      s.kind === 'Namespace'
        ? { [LABEL_DATAPLANE_MODE]: null }
        : { [LABEL_DATAPLANE_MODE]: 'none' };
    await applyLabels(opts, (c) => targets(c, s.kind, s.name, s.namespace, opts.selector), change);
  });
}
