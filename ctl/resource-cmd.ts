/** `meshctl apply | get | delete`: kubectl-like access to the registry. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import YAML from 'yaml';
import { MeshdError } from '../daemon/errors.js';
import {
  formatManifestError,
  KINDS,
  type Kind,
  type ManifestFile,
  type ManifestOrigin,
  parseManifestSet,
  type Resource,
  refToString,
  resourceRef,
} from '../daemon/model/index.js';
import type { ResourceRef } from '../daemon/proto/index.js';
import type { ConnectionFlags } from './config.js';
import { addConnectionOptions, withRegistry } from './connect.js';
import { fetchNodes, nodesTable } from './nodes.js';
import { formatTable } from './output.js';
import { resourceColumns, type TableContext } from './resource-table.js';
import { waypointReadyContext } from './waypoint/view.js';

const ALIASES: Record<string, Kind> = {};
for (const kind of KINDS) {
  const lower = kind.toLowerCase();
  ALIASES[lower] = kind;
  ALIASES[lower.endsWith('y') ? `${lower.slice(0, -1)}ies` : `${lower}s`] = kind;
}
Object.assign(ALIASES, {
  ns: 'Namespace',
  wl: 'Workload',
  svc: 'Service',
  ap: 'AuthorizationPolicy',
  pa: 'PeerAuthentication',
  wp: 'Waypoint',
  httproutes: 'HTTPRoute',
  route: 'HTTPRoute',
  policy: 'AuthorizationPolicy',
  policies: 'AuthorizationPolicy',
});

/** `get nodes` is not a resource kind: it is the servers' view of the agents. */
const NODE_ALIASES = new Set(['node', 'nodes', 'no']);

export function parseKind(value: string): Kind {
  const kind = ALIASES[value.toLowerCase()];
  if (!kind) {
    throw new MeshdError('MESHD_E_BAD_REQUEST', `unknown kind "${value}"`, {
      hint: `known kinds: ${KINDS.join(', ')}`,
    });
  }
  return kind;
}

type Output = 'table' | 'json' | 'yaml';
const parseOutput = (value: string): Output => {
  if (value === 'table' || value === 'json' || value === 'yaml') return value;
  throw new Error(`unknown output format "${value}" (use table, json or yaml)`);
};

/** FILE, DIR (its *.yaml, *.yml, *.json, sorted) or - (stdin). */
export function readManifestFiles(paths: string[]): ManifestFile[] {
  return paths.flatMap((path) => {
    if (path === '-') return [{ source: '<stdin>', text: readFileSync(0, 'utf8') }];
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch (cause) {
      throw new MeshdError('MESHD_E_BAD_REQUEST', `cannot read ${path}`, { cause });
    }
    const files = isDir
      ? readdirSync(path)
          .filter((f) => /\.(ya?ml|json)$/.test(f))
          .sort()
          .map((f) => join(path, f))
      : [path];
    return files.map((file) => ({ source: file, text: readFileSync(file, 'utf8') }));
  });
}

function where(origin: ManifestOrigin | undefined): string {
  return origin ? ` (${origin.source}: document ${origin.document})` : '';
}

export function registerResourceCommands(program: Command): void {
  addConnectionOptions(
    program
      .command('apply')
      .description('create or replace resources from YAML/JSON: all of them or none')
      .requiredOption('-f, --filename <path...>', 'file, directory or - for stdin')
      .option('-n, --namespace <ns>', 'namespace for resources that name none')
      .option('--dry-run', 'validate and check versions on the server, change nothing'),
  ).action(
    async (
      opts: ConnectionFlags & { filename: string[]; namespace?: string; dryRun?: boolean },
    ) => {
      const parsed = parseManifestSet(
        readManifestFiles(opts.filename),
        opts.namespace ? { defaultNamespace: opts.namespace } : {},
      );
      if (!parsed.ok) {
        for (const e of parsed.errors) console.error(`error: ${formatManifestError(e)}`);
        throw new MeshdError(
          'MESHD_E_INVALID_RESOURCE',
          `${parsed.errors.length} error(s); nothing was applied`,
        );
      }
      const response = await withRegistry(opts, (c) =>
        c.apply({
          resources: parsed.resources.map((r) => JSON.stringify(r)),
          dryRun: Boolean(opts.dryRun),
        }),
      ).catch((err: unknown) => {
        // The server names resources by position; point at their files.
        const message = String((err as Error).message).replace(
          /resource (\d+):/g,
          (m, n: string) => `${m.slice(0, -1)}${where(parsed.origins[Number(n) - 1])}:`,
        );
        throw Object.assign(err as Error, { message });
      });
      for (const r of response.results) {
        console.log(
          `${r.ref.kind.toLowerCase()}/${r.ref.name}${r.ref.namespace ? ` -n ${r.ref.namespace}` : ''} ${r.action}${opts.dryRun ? ' (dry run)' : ''}`,
        );
      }
    },
  );

  addConnectionOptions(
    program
      .command('get')
      .description('list resources of a kind, or show one')
      .argument(
        '<kind>',
        `nodes, or one of ${KINDS.join(', ')} (plural and short names work; policies = AuthorizationPolicy)`,
      )
      .argument('[name]', 'one resource')
      .option('-n, --namespace <ns>', 'only this namespace')
      .option('-o, --output <format>', 'table, json or yaml', parseOutput, 'table'),
  ).action(
    async (
      kindArg: string,
      name: string | undefined,
      opts: ConnectionFlags & { namespace?: string; output: Output },
    ) => {
      if (NODE_ALIASES.has(kindArg.toLowerCase())) {
        await getNodes(opts, name, opts.output);
        return;
      }
      const kind = parseKind(kindArg);
      let context: TableContext = {};
      const resources = await withRegistry(opts, async (c) => {
        if (kind === 'Waypoint' && opts.output === 'table') {
          // READY needs the replicas: the Workloads of the namespace(s).
          const { resources: workloads } = await c.list({
            kind: 'Workload',
            namespace: opts.namespace ?? '',
          });
          context = waypointReadyContext(workloads.map((r) => JSON.parse(r) as unknown));
        }
        if (name) {
          const ref: ResourceRef = {
            kind,
            namespace: kind === 'Namespace' ? '' : (opts.namespace ?? 'default'),
            name,
          };
          return [JSON.parse((await c.get({ ref })).resource) as Resource];
        }
        const { resources } = await c.list({ kind, namespace: opts.namespace ?? '' });
        return resources.map((r) => JSON.parse(r) as Resource);
      });
      console.log(render(kind, resources, opts.output, Boolean(name), context));
    },
  );

  addConnectionOptions(
    program
      .command('delete')
      .description('delete one resource, or every resource of files')
      .argument('[kind]', 'kind of the resource')
      .argument('[name]', 'its name')
      .option('-n, --namespace <ns>', 'its namespace', 'default')
      .option('-f, --filename <path...>', 'delete what these files describe'),
  ).action(
    async (
      kindArg: string | undefined,
      name: string | undefined,
      opts: ConnectionFlags & { namespace: string; filename?: string[] },
    ) => {
      const refs: ResourceRef[] = [];
      if (opts.filename) {
        const parsed = parseManifestSet(readManifestFiles(opts.filename));
        if (!parsed.ok)
          throw new MeshdError(
            'MESHD_E_INVALID_RESOURCE',
            parsed.errors.map(formatManifestError).join('\n'),
          );
        for (const r of parsed.resources)
          refs.push({ kind: r.kind, namespace: r.metadata.namespace ?? '', name: r.metadata.name });
      } else if (kindArg && name) {
        const kind = parseKind(kindArg);
        refs.push({ kind, namespace: kind === 'Namespace' ? '' : opts.namespace, name });
      } else {
        throw new MeshdError('MESHD_E_BAD_REQUEST', 'delete needs KIND NAME or -f FILE');
      }
      await withRegistry(opts, async (c) => {
        for (const ref of refs) {
          await c.delete({ ref, resourceVersion: '' });
          console.log(
            `${ref.kind.toLowerCase()}/${ref.name}${ref.namespace ? ` -n ${ref.namespace}` : ''} deleted`,
          );
        }
      });
    },
  );
}

async function getNodes(flags: ConnectionFlags, name: string | undefined, output: Output) {
  const answer = await fetchNodes(flags);
  const nodes = name ? answer.nodes.filter((n) => n.name === name) : answer.nodes;
  if (name && nodes.length === 0)
    throw new MeshdError('MESHD_E_NOT_FOUND', `node ${name} is not known to the servers`, {
      hint: 'see "meshctl get nodes"; a node appears once its agent connects or a workload names it',
    });
  for (const u of answer.unreachable) console.error(`warning: server ${u.address}: ${u.error}`);
  if (output === 'json') console.log(JSON.stringify(name ? nodes[0] : nodes, null, 2));
  else if (output === 'yaml') console.log(YAML.stringify(name ? nodes[0] : nodes).trimEnd());
  else console.log(nodesTable(nodes, Date.now()));
}

export function render(
  kind: Kind,
  resources: Resource[],
  output: Output,
  single: boolean,
  context: TableContext = {},
): string {
  if (output === 'json') return JSON.stringify(single ? resources[0] : resources, null, 2);
  if (output === 'yaml')
    return resources
      .map((r) => YAML.stringify(r))
      .join('---\n')
      .trimEnd();
  if (resources.length === 0) return `no ${kind} resources found`;
  const { headers, row } = resourceColumns(kind, context);
  const sorted = [...resources].sort((a, b) =>
    refToString(resourceRef(a)).localeCompare(refToString(resourceRef(b))),
  );
  return formatTable(headers, sorted.map(row));
}
