// `meshctl agent …` against real agents in a meshed lab, run as the real CLI from the host's
// namespace: it reaches each node's admin endpoint (127.0.0.1:15000 inside the node's netns)
// by --node. A long-lived connection between workloads of two nodes shows on both agents with
// both identities, and leaves the tables when it closes; the node's workloads are listed as
// captured; a saved /config_dump gives the same views with -f.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { type Lab, withLab } from '../../ctl/lab/index.js';
import type { ConnectionInfo } from '../../daemon/agent/index.js';
import { stop, supportScript, waitForLine } from '../support/lab-helpers.js';

const root = new URL('../../../', import.meta.url);
const node = new URL('node_modules/.bin/node', root).pathname;
const main = new URL('dist/ctl/main.js', root).pathname;
const run = promisify(execFile);

const VIP = '10.96.0.50';
const WEB = 'spiffe://cluster.local/ns/demo/sa/web';
const API = 'spiffe://cluster.local/ns/demo/sa/api';

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean) {
  const deadline = Date.now() + 10_000;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (ok(last)) return last;
    if (Date.now() > deadline)
      throw new Error(`timed out: ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A tcp-client in a namespace; `hold` keeps its connections until we end its stdin. */
const spawnIn = (netns: string, ...args: string[]) =>
  spawn('ip', ['netns', 'exec', netns, process.execPath, supportScript('tcp-client'), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });

/** A table printed by meshctl as objects keyed by its headers (columns are 3+ spaces apart). */
function parseTable(text: string): Record<string, string>[] {
  const [header = '', ...lines] = text.trimEnd().split('\n');
  const starts = [...header.matchAll(/(?:^|\s{3})(\S)/g)].map(
    (m) => (m.index ?? 0) + m[0].length - 1,
  );
  const cut = (line: string) =>
    starts.map((s, i) => line.slice(s, starts[i + 1] ?? line.length).trim());
  const names = cut(header);
  return lines.map((l) => Object.fromEntries(cut(l).map((v, i) => [names[i], v])));
}

test('meshctl agent shows one agent’s workloads and live connections, by --node and from a saved dump', async () => {
  await withLab(
    {
      nodes: 2,
      workloads: 1,
      mesh: true,
      apps: [
        { name: 'web', nodeIndex: 1, labels: { app: 'web' }, serviceAccount: 'web' },
        { name: 'api', nodeIndex: 2, labels: { app: 'api' }, serviceAccount: 'api' },
      ],
    },
    async (lab: Lab) => {
      const meshctl = async (...args: string[]) =>
        (await run(node, [main, ...args], { timeout: 30_000 })).stdout;
      const agent = (view: string, nodeName: string, ...rest: string[]) =>
        meshctl('agent', view, '--node', nodeName, '--lab', lab.id, ...rest);
      const api = lab.member('api').ipv4;
      const dir = mkdtempSync(join(tmpdir(), 'meshd-agent-cmd-'));
      let server: ChildProcess | undefined;
      let holder: ChildProcess | undefined;
      let viaVip: ChildProcess | undefined;
      try {
        server = lab.spawn('api', [process.execPath, supportScript('tcp-server'), 'echo', '9000']);
        await waitForLine(server, 'listening');
        holder = spawnIn(lab.member('web').netns, 'hold', '1', api, '9000');
        await waitForLine(holder, '{"held":1}', 15_000);
        // And one through a Service VIP, which the agent sends to the chosen endpoint.
        const manifest = join(dir, 'service.yaml');
        writeFileSync(
          manifest,
          'apiVersion: meshd.io/v1alpha1\nkind: Service\nmetadata: { name: api, namespace: demo }\n' +
            `spec: { addresses: [${VIP}], ports: [{ port: 80, targetPort: 9000 }], selector: { matchLabels: { app: api } } }\n`,
        );
        await lab.exec('n1', [
          node,
          main,
          'apply',
          '-f',
          manifest,
          '--ca-dir',
          lab.mesh?.caDir ?? '',
        ]);
        await eventually(
          "the Service reaches n1's agent with its endpoint",
          async () => parseTable(await agent('services', 'n1')),
          (rows) => rows.some((r) => r.NAME === 'api' && r.ENDPOINTS === '1'),
        );
        viaVip = spawnIn(lab.member('web').netns, 'hold', '1', VIP, '80');
        await waitForLine(viaVip, '{"held":1}', 15_000);

        // Node 1: the outbound tunnel, as a table with both identities.
        const table = parseTable(await agent('connections', 'n1'));
        const out = table.find(
          (r) => r.DIRECTION === 'outbound' && r['ORIGINAL DST'] === `${api}:9000`,
        );
        assert.ok(out, `n1 lists the connection:\n${JSON.stringify(table, null, 2)}`);
        assert.equal(out.PATH, 'hbone');
        assert.equal(out.SOURCE, 'demo/web');
        assert.equal(out.DESTINATION, 'demo/api');
        assert.equal(out['SRC IDENTITY'], WEB);
        assert.equal(out['DST IDENTITY'], API);
        assert.equal(out['DST ADDRESS'], `${api}:9000`);
        assert.equal(out.SERVICE, '-');
        assert.ok(Number(out['SRC BYTES']) >= 1 && Number(out['DST BYTES']) >= 1, 'the round trip');
        const vip = table.find((r) => r['ORIGINAL DST'] === `${VIP}:80`);
        assert.ok(vip, `n1 lists the VIP connection:\n${JSON.stringify(table, null, 2)}`);
        assert.equal(vip.SERVICE, 'api.demo');
        assert.equal(vip['DST ADDRESS'], `${api}:9000`);
        assert.equal(vip['DST IDENTITY'], API);

        // Node 2: the same connection inbound, with the source's own port (from `forwarded`).
        const n2 = JSON.parse(await agent('connections', 'n2', '-o', 'json')) as {
          node: string;
          connections: ConnectionInfo[];
        };
        assert.equal(n2.node, 'n2');
        const inbound = n2.connections.find(
          (c) =>
            c.direction === 'inbound' &&
            `${c.source.address}:${c.source.port}` === out['SRC ADDRESS'],
        );
        assert.ok(inbound, `n2 lists the connection: ${JSON.stringify(n2.connections)}`);
        assert.equal(inbound.path, 'hbone');
        assert.equal(inbound.peerIdentity, WEB);
        assert.equal(inbound.localIdentity, API);
        assert.equal(inbound.source.workload, 'demo/web');
        assert.equal(inbound.source.address, lab.member('web').ipv4);
        assert.equal(inbound.destination.port, 9000);
        assert.equal(
          n2.connections.filter((c) => c.direction === 'inbound' && c.destination.port === 9000)
            .length,
          2,
          'both connections arrive at api',
        );

        // Node 2's workloads: its captured app, not node 1's.
        const wl = JSON.parse(await agent('workloads', 'n2', '-o', 'json')) as {
          node: string;
          workloads: { namespace: string; name: string; identity: string; captured: boolean }[];
        };
        assert.equal(wl.node, 'n2');
        assert.deepEqual(
          wl.workloads.map((w) => [`${w.namespace}/${w.name}`, w.identity, w.captured]),
          [['demo/api', API, true]],
        );
        assert.match(await agent('certs', 'n1'), /spiffe:\/\/cluster\.local\/node\/n1 /);
        assert.match(
          await meshctl('certs', '--node', 'n1', '--lab', lab.id),
          /spiffe:\/\/cluster\.local\/ns\/demo\/sa\/web /,
        );

        // A dump saved on the node's host (here: in its netns) gives the same views with -f.
        const saved = join(dir, 'n1.json');
        const { stdout: dump } = await lab.exec('n1', [
          'curl',
          '-sS',
          'http://127.0.0.1:15000/config_dump',
        ]);
        writeFileSync(saved, dump);
        const fromFile = parseTable(await meshctl('agent', 'connections', '-f', saved));
        assert.ok(
          fromFile.some(
            (r) =>
              r['DST ADDRESS'] === `${api}:9000` &&
              r['SRC IDENTITY'] === WEB &&
              r['DST IDENTITY'] === API,
          ),
          JSON.stringify(fromFile),
        );
        const workloads = parseTable(await meshctl('agent', 'workloads', '-f', saved));
        assert.deepEqual(
          workloads.map((r) => [r.NAMESPACE, r.NAME, r.IDENTITY, r.CAPTURED]),
          [['demo', 'web', WEB, 'yes']],
        );

        // Closed: it leaves both agents' tables.
        holder.stdin?.end();
        viaVip.stdin?.end();
        for (const n of ['n1', 'n2']) {
          await eventually(
            `the closed connection leaves ${n}'s table`,
            async () =>
              (
                JSON.parse(await agent('connections', n, '-o', 'json')) as {
                  connections: ConnectionInfo[];
                }
              ).connections.filter((c) => c.destination.port === 9000).length,
            (left) => left === 0,
          );
        }

        // A node that is not there: a clear error, not a hang.
        await assert.rejects(agent('workloads', 'n9'), {
          stderr: new RegExp(`MESHD_E_AGENT_ADMIN: lab ${lab.id} has no node n9`),
        });
      } finally {
        stop(holder);
        stop(viaVip);
        stop(server);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
