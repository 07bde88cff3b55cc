/**
 * `meshctl install systemd|kubernetes|cni`: put meshd on hosts (hardened systemd units and their
 * config), print Kubernetes manifests, and chain meshd-cni into a node's CNI config.
 * docs/operations.md (Install) explains what each writes and why.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { CNI_TIMEOUT_BOUNDS } from '../cni/index.js';
import { writeFileAtomic } from '../daemon/files.js';
import { packageRoot } from '../daemon/paths.js';
import {
  DEFAULT_AGENT_VALUES,
  DEFAULT_CNI_ENTRY,
  DEFAULT_PREFIX,
  IMAGE_REPOSITORY,
  type InstallResult,
  installCniChain,
  installError,
  kubernetesManifests,
  manifestHeader,
  ROLES,
  type Role,
  renderManifests,
  SYSTEMD_PATHS,
  systemdInstallFiles,
  waypointInstance,
  writeInstallFiles,
} from './install/index.js';
import { formatTable } from './output.js';

export function meshdVersion(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as {
    version?: string;
  };
  return pkg.version ?? '0.0.0';
}

/** The host's name as a node name: the first label, lowercase (checked later as a DNS label). */
function defaultNodeName(): string {
  return (hostname().split('.')[0] ?? '').toLowerCase();
}

const rolesArg = (value: string): Role[] => {
  if (value === 'all') return [...ROLES];
  if ((ROLES as readonly string[]).includes(value)) return [value as Role];
  throw new InvalidArgumentError('use server, agent or all');
};

interface SystemdOptions {
  root: string;
  prefix: string;
  role: Role[];
  nodeName: string;
  server: string;
  trustDomain: string;
  caBundle: string;
  joinToken?: string;
  waypoint?: string;
  waypointAddress?: string;
  force?: boolean;
}

function readJoinToken(value: string | undefined): string | undefined {
  if (value !== '-') return value;
  const token = readFileSync(0, 'utf8').trim();
  if (!token) throw installError('--join-token -: nothing on stdin', 'pipe the token in');
  return token;
}

const showMode = (mode: number) => `0${mode.toString(8)}`;

function resultTable(results: readonly InstallResult[]): string {
  return formatTable(
    ['file', 'mode', 'action'],
    results.map((r) => [r.written, showMode(r.mode), r.action]),
  );
}

/** What the operator does after the files are in place (nothing here starts a service). */
function systemdNextSteps(
  root: string,
  roles: readonly Role[],
  waypoint: string | undefined,
): string[] {
  const instance = waypoint === undefined ? undefined : waypointInstance(waypoint);
  const units = [
    ...roles.map((r) => `meshd-${r}.service`),
    ...(instance ? [`meshd-waypoint@${instance}.service`] : []),
  ].join(' ');
  if (root !== '/') {
    return [
      `written under ${root} (an image or a chroot); nothing was loaded or started.`,
      'On its first boot systemd-sysusers and systemd-tmpfiles create the meshd user and the lock file.',
      `Enable the units in the image: systemctl --root=${root} enable ${units}`,
    ];
  }
  const steps = ['next steps (nothing was loaded or started):'];
  if (roles.includes('server')) {
    steps.push(
      `  systemd-sysusers ${SYSTEMD_PATHS.sysusers}            # the user meshd-server runs as`,
      `  chown -R meshd:meshd ${SYSTEMD_PATHS.caDir}                   # after every meshctl ca command too`,
    );
  }
  if (roles.includes('agent')) {
    steps.push(
      `  systemd-tmpfiles --create ${SYSTEMD_PATHS.tmpfiles}   # /run/xtables.lock for iptables-legacy`,
      `  the CA's bundle.pem → ${DEFAULT_AGENT_VALUES.caBundle}, a join token in ${SYSTEMD_PATHS.configDir}/agent.env (MESHD_JOIN_TOKEN)`,
    );
  }
  steps.push('  systemctl daemon-reload', `  systemctl enable --now ${units}`);
  if (roles.includes('agent') && !instance) {
    steps.push(
      'a waypoint replica on this host: /etc/meshd/waypoint-NS_NAME.env with MESHD_WAYPOINT=NS/NAME',
      '  (or run again with --waypoint NS/NAME), then systemctl enable --now meshd-waypoint@NS_NAME',
    );
  }
  return steps;
}

function registerSystemd(install: Command): void {
  install
    .command('systemd')
    .description(
      'write the hardened meshd-server/meshd-agent units, the meshd-waypoint@ template and their config (/etc/meshd/*.env); starts nothing',
    )
    .option('--root <dir>', 'write everything under this directory (an image or a chroot)', '/')
    .option(
      '--prefix <dir>',
      'where the meshd checkout (bin/meshd, dist/, node_modules/) is on the target',
      DEFAULT_PREFIX,
    )
    .addOption(
      new Option('--role <role>', 'server, agent or all')
        .argParser(rolesArg)
        .default([...ROLES], 'all'),
    )
    .option('--node-name <name>', "the agent's node name (default: this host's name)")
    .option('--server <host:port>', 'meshd server for the agent', DEFAULT_AGENT_VALUES.server)
    .option('--trust-domain <domain>', 'the mesh trust domain', DEFAULT_AGENT_VALUES.trustDomain)
    .option(
      '--ca-bundle <file>',
      "the CA's bundle.pem on the target (the agent trusts it before joining)",
      DEFAULT_AGENT_VALUES.caBundle,
    )
    .option('--join-token <token>', 'one-time join token for the agent (- reads it from stdin)')
    .option(
      '--waypoint <ns/name>',
      'also configure a replica of this Waypoint (/etc/meshd/waypoint-NS_NAME.env)',
    )
    .option(
      '--waypoint-address <ip>',
      "the replica's address (default: the host's first non-loopback IPv4)",
    )
    .option('--force', 'replace files that differ from what this install writes')
    .action((opts: SystemdOptions) => {
      const files = systemdInstallFiles({
        roles: opts.role,
        prefix: opts.prefix,
        trustDomain: opts.trustDomain,
        nodeName: opts.nodeName ?? defaultNodeName(),
        server: opts.server,
        caBundle: opts.caBundle,
        joinToken: readJoinToken(opts.joinToken),
        waypoint: opts.waypoint,
        waypointAddress: opts.waypointAddress,
      });
      const root = resolve(opts.root);
      const results = writeInstallFiles(root, files, opts.force ?? false);
      console.log(resultTable(results));
      console.log('');
      console.log(systemdNextSteps(root, opts.role, opts.waypoint).join('\n'));
    });
}

interface KubernetesCmdOptions {
  image?: string;
  namespace: string;
  trustDomain: string;
  output?: string;
}

function registerKubernetes(install: Command): void {
  install
    .command('kubernetes')
    .description(
      'print Kubernetes manifests: namespace, RBAC, the server Deployment and Service, the agent DaemonSet',
    )
    .option('--image <image>', `meshd image (default ${IMAGE_REPOSITORY}:<version>)`)
    .option('--namespace <ns>', 'namespace for meshd', 'meshd-system')
    .option('--trust-domain <domain>', 'the mesh trust domain', DEFAULT_AGENT_VALUES.trustDomain)
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action((opts: KubernetesCmdOptions) => {
      const version = meshdVersion();
      const image = opts.image ?? `${IMAGE_REPOSITORY}:${version}`;
      const docs = kubernetesManifests({
        image,
        namespace: opts.namespace,
        trustDomain: opts.trustDomain,
        version,
      });
      const text = renderManifests(docs, manifestHeader(opts.namespace, version));
      if (opts.output) {
        writeFileAtomic(opts.output, text, 0o644);
        process.stderr.write(`${docs.length} manifests written to ${opts.output}\n`);
      } else {
        process.stdout.write(text);
      }
    });
}

function registerCni(install: Command): void {
  install
    .command('cni')
    .description(
      "chain meshd-cni into this node's primary CNI config (last plugin), or --remove it",
    )
    .option('--conf-dir <dir>', 'the CNI network config directory', '/etc/cni/net.d')
    .option('--agent-socket <path>', "the agent's MESHD_CNI_SOCKET", DEFAULT_CNI_ENTRY.agentSocket)
    .addOption(
      new Option('--timeout-ms <ms>', 'how long meshd-cni waits for the agent')
        .default(DEFAULT_CNI_ENTRY.timeoutMs)
        .argParser((v) => {
          const { min, max } = CNI_TIMEOUT_BOUNDS;
          if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
            throw new InvalidArgumentError(`a whole number of milliseconds, ${min} to ${max}`);
          }
          return Number(v);
        }),
    )
    .option('--log-file <path>', 'meshd-cni log file ("" for none)', DEFAULT_CNI_ENTRY.logFile)
    .option('--remove', 'take meshd-cni out of the chain instead (before removing meshd)')
    .action(
      (opts: {
        confDir: string;
        agentSocket: string;
        timeoutMs: number;
        logFile: string;
        remove?: boolean;
      }) => {
        const result = installCniChain(
          opts.confDir,
          { agentSocket: opts.agentSocket, timeoutMs: opts.timeoutMs, logFile: opts.logFile },
          opts.remove ?? false,
        );
        console.log(formatTable(['file', 'action'], [[result.file, result.action]]));
      },
    );
}

export function registerInstallCommands(program: Command): void {
  const install = program
    .command('install')
    .description('install meshd: systemd units, Kubernetes manifests, the CNI chain entry');
  registerSystemd(install);
  registerKubernetes(install);
  registerCni(install);
}
