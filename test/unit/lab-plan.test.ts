import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressesOf, cniNetworkConfig, planLab, podRoutes } from '../../ctl/lab/index.js';

test('lab names carry the lab prefix and id; addresses follow the node index', () => {
  const plan = planLab('ab12cd', 2, 2);
  assert.equal(plan.underlayNetns, 'mdl-ab12cd-ul');
  assert.deepEqual(
    plan.nodes.map((n) => [n.name, n.netns, n.ipv4, n.ipv6, n.podCidrV4, n.podCidrV6]),
    [
      ['n1', 'mdl-ab12cd-n1', '172.30.0.11', 'fd00:30::b', '10.40.1.0/24', 'fd00:40:1::/64'],
      ['n2', 'mdl-ab12cd-n2', '172.30.0.12', 'fd00:30::c', '10.40.2.0/24', 'fd00:40:2::/64'],
    ],
  );
  assert.deepEqual(
    plan.workloads.map((w) => `${w.name}@${w.node}:${w.netns}`),
    [
      'n1-w1@n1:mdl-ab12cd-n1-w1',
      'n1-w2@n1:mdl-ab12cd-n1-w2',
      'n2-w1@n2:mdl-ab12cd-n2-w1',
      'n2-w2@n2:mdl-ab12cd-n2-w2',
    ],
  );
  const [n1, n2] = plan.nodes;
  assert.deepEqual(podRoutes(n1!, plan.nodes), [
    { dst: '10.40.2.0/24', via: '172.30.0.12' },
    { dst: 'fd00:40:2::/64', via: 'fd00:30::c' },
  ]);
  assert.deepEqual(
    podRoutes(n2!, plan.nodes).map((r) => r.via),
    ['172.30.0.11', 'fd00:30::b'],
  );
});

test('bad sizes and ids are refused with the flag name', () => {
  assert.throws(() => planLab('ab12cd', 0, 1), /--nodes must be an integer from 1 to 16, got 0/);
  assert.throws(
    () => planLab('ab12cd', 2, 99),
    /--workloads must be an integer from 0 to 32, got 99/,
  );
  assert.throws(() => planLab('AB-12', 1, 1), /lab id "AB-12" must be 4-12 lowercase/);
});

test('the CNI network config is ptp + host-local, dual stack, no masquerading', () => {
  const [node] = planLab('ab12cd', 1, 1).nodes;
  assert.deepEqual(cniNetworkConfig(node!, '/run/x/ipam/n1'), {
    cniVersion: '1.0.0',
    name: 'meshd-lab',
    type: 'ptp',
    ipMasq: false,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet: '10.40.1.0/24' }], [{ subnet: 'fd00:40:1::/64' }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
      dataDir: '/run/x/ipam/n1',
    },
  });
});

test('workload addresses come from the sandbox interface of the CNI result', () => {
  const result = {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'veth1' }, { name: 'eth0', sandbox: '/var/run/netns/x' }],
    ips: [
      { address: '10.40.1.2/24', gateway: '10.40.1.1', interface: 1 },
      { address: 'fd00:40:1::2/64', gateway: 'fd00:40:1::1', interface: 1 },
    ],
  };
  assert.deepEqual(addressesOf(result), { ipv4: '10.40.1.2', ipv6: 'fd00:40:1::2' });
  assert.throws(() => addressesOf({ cniVersion: '1.0.0', ips: [] }), /no IPv4 address/);
});
