/** `meshctl lab …`: build, inspect, enter and remove the netns lab. */
import { spawn } from 'node:child_process';
import { type Command, InvalidArgumentError } from 'commander';
import {
  DEMO_NAMESPACE,
  DEMO_VIPS,
  demoNextSteps,
  destroyAllLabsSync,
  LAB_STATE_ROOT,
  Lab,
  type LabMesh,
  listLabIds,
} from './lab/index.js';
import { formatOutput, formatTable, type OutputFormat, parseOutputFormat } from './output.js';

const intArg = (value: string): number => {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('not a whole number');
  return Number(value);
};

export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description('a multi-host test network on this machine, built in network namespaces');

  lab
    .command('up')
    .description(
      'build a lab: an underlay bridge, N nodes, a meshd server, an agent per node and the demo app (workloads via real CNI)',
    )
    .option('--nodes <n>', 'number of nodes', intArg, 3)
    .option(
      '--workloads <m>',
      'anonymous workloads per node, instead of the demo (with --no-demo)',
      intArg,
      2,
    )
    .option('--id <id>', 'lab id (default: random); namespaces are named mdl-<id>-…')
    .option('--no-demo', 'no demo app: --workloads anonymous workloads per node instead')
    .option('--no-mesh', 'only the network: no meshd server, agents or registered workloads')
    .action(
      async (opts: {
        nodes: number;
        workloads: number;
        id?: string;
        mesh: boolean;
        demo: boolean;
      }) => {
        const demo = opts.mesh && opts.demo;
        const progress = (msg: string) => process.stderr.write(`  ${msg}\n`);
        process.stderr.write(
          `building lab: ${opts.nodes} nodes, ${demo ? 'the demo app' : `${opts.workloads} workloads per node`}${opts.mesh ? ', meshd' : ''}\n`,
        );
        const created = await Lab.create({
          nodes: opts.nodes,
          workloads: opts.workloads,
          mesh: opts.mesh,
          demo,
          ...(opts.id ? { id: opts.id } : {}),
          progress,
        });
        created.keep();
        console.log(statusTable(created));
        if (demo) console.log(demoSummary(created));
        else console.log(created.mesh ? meshNextSteps(created, created.mesh) : nextSteps(created));
      },
    );

  lab
    .command('status')
    .description('list the nodes and workloads of a lab with their namespaces and IPs')
    .option('--lab <id>', 'which lab (default: the only one)')
    .option('-o, --output <format>', 'table, json or yaml', parseOutputFormat, 'table')
    .action((opts: { lab?: string; output: OutputFormat }) => {
      const labs = opts.lab ? [Lab.open(opts.lab)] : listLabIds().map((id) => Lab.open(id));
      if (opts.output !== 'table') {
        const data = labs.map((l) => ({ id: l.id, ready: l.state.ready, members: l.members() }));
        console.log(formatOutput(opts.output, data, () => ''));
        return;
      }
      console.log(
        labs.length === 0
          ? 'no lab is running (start one with "meshctl lab up")'
          : labs.map(statusTable).join('\n\n'),
      );
    });

  lab
    .command('exec')
    .description('run a command inside a node or workload namespace')
    .argument('<name>', 'node (n1) or workload (n1-w1)')
    .argument('<command...>', 'the command, after --')
    .option('--lab <id>', 'which lab (default: the only one)')
    .action((name: string, argv: string[], opts: { lab?: string }) => {
      const member = Lab.open(opts.lab).member(name);
      const child = spawn('ip', ['netns', 'exec', member.netns, ...argv], { stdio: 'inherit' });
      child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
    });

  lab
    .command('down')
    .description('remove a lab: processes, CNI DEL, namespaces, state')
    .option('--lab <id>', 'which lab (default: the only one)')
    .option('--all', 'remove every lab and any leftover mdl-* namespace of crashed runs')
    .action((opts: { lab?: string; all?: boolean }) => {
      const { removed, problems } = opts.all
        ? destroyAllLabsSync()
        : (() => {
            const l = Lab.open(opts.lab);
            return { removed: [l.id], problems: l.destroy() };
          })();
      console.log(removed.length ? `removed: ${removed.join(', ')}` : 'nothing to remove');
      if (problems.length) {
        console.error(`could not remove:\n  ${problems.join('\n  ')}`);
        process.exitCode = 1;
      }
    });
}

function statusTable(lab: Lab): string {
  const rows = lab.members().map((m) => [m.name, m.kind, m.node, m.ipv4, m.ipv6 ?? '-', m.netns]);
  const state = lab.state.ready ? 'ready' : 'incomplete';
  return `lab ${lab.id} (${state}, created ${lab.state.createdAt})\n${formatTable(
    ['name', 'kind', 'node', 'ipv4', 'ipv6', 'netns'],
    rows,
  )}`;
}

function demoSummary(lab: Lab): string {
  const where = (name: string) => lab.members().find((m) => m.name === name)?.node ?? '?';
  return [
    '',
    `mesh: meshd server on ${lab.plan.nodes[0]?.name}, an agent on every node; namespace ${DEMO_NAMESPACE} enrolled (meshd.io/dataplane-mode=ambient)`,
    `demo: client (${where('client')}) -> frontend (${where('frontend')}, ${DEMO_VIPS.frontend}:80) -> backend v1 (${where('backend-v1')}) | v2 (${where('backend-v2')}) (${DEMO_VIPS.backend}:80) -> redis (${where('redis')}, ${DEMO_VIPS.redis}:6379)`,
    '      policies: only frontend may call backend, only backend may call redis',
    `      manifests: ${LAB_STATE_ROOT}/${lab.id}/demo.yaml; logs: ${LAB_STATE_ROOT}/${lab.id}/*.log`,
    '      meshctl talks to this lab while no server is configured (see "meshctl config view")',
    '',
    'try:',
    ...demoNextSteps(lab),
  ].join('\n');
}

function nextSteps(lab: Lab): string {
  const w = lab.members().filter((m) => m.kind === 'workload');
  const [a, b] = [w[0], w[w.length - 1]];
  const lines = ['', 'next:'];
  if (a && b) {
    lines.push(`  bin/meshctl lab exec ${b.name} -- python3 -m http.server 8080 &`);
    lines.push(`  bin/meshctl lab exec ${a.name} -- curl -s http://${b.ipv4}:8080/`);
  }
  lines.push('  bin/meshctl lab status', '  bin/meshctl lab down');
  return lines.join('\n');
}

function meshNextSteps(lab: Lab, mesh: LabMesh): string {
  const w = lab.members().filter((m) => m.kind === 'workload');
  const [a, b] = [w[0], w.find((m) => m.node !== w[0]?.node) ?? w[w.length - 1]];
  const lines = [
    '',
    `mesh: meshd server at ${mesh.serverAddress}, one agent per node; workloads enrolled in namespace ${DEMO_NAMESPACE}`,
    '',
    'try:',
  ];
  if (a && b) {
    lines.push(`  bin/meshctl lab exec ${b.name} -- python3 -m http.server 8080 &`);
    lines.push(
      `  bin/meshctl lab exec ${a.name} -- curl -s http://${b.ipv4}:8080/     # through an HBONE tunnel`,
    );
    lines.push(
      `  grep '"connection complete"' ${mesh.logs[a.node] ?? ''}     # the access log names both identities`,
    );
    lines.push(
      `  bin/meshctl lab exec ${a.node} -- curl -s 127.0.0.1:15020/metrics | grep istio_tcp_connections_opened`,
    );
    lines.push(`  bin/meshctl lab exec ${a.node} -- curl -s 127.0.0.1:15000/config_dump`);
    lines.push(
      `  bin/meshctl lab exec ${a.node} -- bin/meshctl get workloads -n ${DEMO_NAMESPACE} --ca-dir ${mesh.caDir}`,
    );
  }
  lines.push('  bin/meshctl lab down');
  return lines.join('\n');
}
