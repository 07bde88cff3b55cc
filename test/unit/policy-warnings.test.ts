// l7Warnings, for `meshctl check`: what an L4 enforcement point does with L7 conditions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AuthorizationPolicy,
  formatFieldErrors,
  validateResource,
} from '../../daemon/model/index.js';
import { L7_OPERATION_FIELDS, l7Warnings } from '../../daemon/policy/index.js';

function policy(spec: Record<string, unknown>): AuthorizationPolicy {
  const r = validateResource({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'p', namespace: 'shop' },
    spec,
  });
  assert.ok(r.ok, r.ok ? '' : formatFieldErrors(r.errors));
  return r.resource as AuthorizationPolicy;
}

test('no warnings for L4-only policies or policies without rules', () => {
  assert.deepEqual(l7Warnings(policy({})), []);
  assert.deepEqual(l7Warnings(policy({ action: 'DENY', rules: [{}] })), []);
  assert.deepEqual(
    l7Warnings(
      policy({
        rules: [
          {
            from: [{ source: { principals: ['*'] } }],
            to: [{ operation: { ports: [80], notPorts: [81] } }],
          },
        ],
      }),
    ),
    [],
  );
});

test('an ALLOW rule with L7 conditions never matches at L4', () => {
  const p = policy({
    rules: [
      { to: [{ operation: { ports: [80] } }] },
      {
        to: [
          { operation: { methods: ['GET'], ports: [80] } },
          { operation: { notPaths: ['/admin'] } },
        ],
      },
    ],
  });
  assert.deepEqual(l7Warnings(p), [
    'spec.rules[1] has L7 conditions (to[0].operation.methods, to[1].operation.notPaths) that only a waypoint can check: at L4 this ALLOW rule never matches, so without a waypoint it allows nothing',
  ]);
});

test('a DENY rule with L7 conditions matches on its L4 part', () => {
  const p = policy({
    action: 'DENY',
    rules: [
      {
        from: [{ source: { namespaces: ['x'] } }],
        to: [{ operation: { hosts: ['a'], notHosts: ['b'] } }],
      },
    ],
  });
  assert.deepEqual(l7Warnings(p), [
    'spec.rules[0] has L7 conditions (to[0].operation.hosts, to[0].operation.notHosts) that only a waypoint can check: at L4 this DENY rule matches on its other conditions alone, so without a waypoint it denies every method, path and host',
  ]);
});

test('every L7 field is named', () => {
  for (const field of L7_OPERATION_FIELDS) {
    const value = field.toLowerCase().includes('method') ? ['GET'] : ['/x'];
    const [warning] = l7Warnings(policy({ rules: [{ to: [{ operation: { [field]: value } }] }] }));
    assert.ok(warning?.includes(`to[0].operation.${field}`), field);
  }
});

test('header conditions are L7; source.* and destination.* conditions are L4; targetRefs policies get none', () => {
  const rules = [
    {
      when: [
        { key: 'source.ip', values: ['10.0.0.0/8'] },
        { key: 'destination.port', values: ['80'] },
      ],
    },
    {
      to: [{ operation: { methods: ['GET'] } }],
      when: [
        { key: 'source.namespace', values: ['shop'] },
        { key: 'request.headers[X-User]', values: ['alice'] },
      ],
    },
  ];
  assert.deepEqual(l7Warnings(policy({ action: 'DENY', rules })), [
    'spec.rules[1] has L7 conditions (to[0].operation.methods, when[1] request.headers[X-User]) that only a waypoint can check: at L4 this DENY rule matches on its other conditions alone, so without a waypoint it denies every method, path, host and header',
  ]);
  assert.deepEqual(l7Warnings(policy({ rules })), [
    'spec.rules[1] has L7 conditions (to[0].operation.methods, when[1] request.headers[X-User]) that only a waypoint can check: at L4 this ALLOW rule never matches, so without a waypoint it allows nothing',
  ]);
  assert.deepEqual(
    l7Warnings(policy({ targetRefs: [{ kind: 'Waypoint', name: 'wp' }], rules })),
    [],
  );
});
