// Label selectors with Kubernetes semantics: every operator, ANDing, the empty selector,
// invalid selectors refused, and the table text form.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  isEmptySelector,
  type LabelSelector,
  matches,
  selectorToString,
  validateResource,
} from '../../daemon/model/index.js';

const labels = { app: 'web', tier: 'front', 'example.com/team': 'a' };

test('matchLabels and every matchExpressions operator, ANDed', () => {
  const cases: [LabelSelector, boolean][] = [
    [{}, true],
    [{ matchLabels: {} }, true],
    [{ matchLabels: { app: 'web' } }, true],
    [{ matchLabels: { app: 'web', tier: 'back' } }, false],
    [{ matchLabels: { missing: '' } }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['back'] }] }, false],
    [{ matchExpressions: [{ key: 'missing', operator: 'In', values: ['x'] }] }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['back'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }, false],
    // NotIn matches when the label is absent (Kubernetes semantics).
    [{ matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['x'] }] }, true],
    [{ matchExpressions: [{ key: 'example.com/team', operator: 'Exists' }] }, true],
    [{ matchExpressions: [{ key: 'missing', operator: 'Exists' }] }, false],
    [{ matchExpressions: [{ key: 'missing', operator: 'DoesNotExist' }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, false],
    [
      {
        matchLabels: { app: 'web' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['front'] },
          { key: 'legacy', operator: 'DoesNotExist' },
        ],
      },
      true,
    ],
    [
      {
        matchLabels: { app: 'web' },
        matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }],
      },
      false,
    ],
  ];
  for (const [selector, expected] of cases) {
    assert.equal(matches(selector, labels), expected, JSON.stringify(selector));
  }
  assert.equal(matches({}, undefined), true);
  assert.equal(matches({ matchLabels: { app: 'web' } }, undefined), false);
  // An empty label value is a value: it matches only an empty label.
  assert.equal(matches({ matchLabels: { canary: '' } }, { canary: '' }), true);
  assert.equal(matches({ matchLabels: { canary: '' } }, {}), false);
  // Inherited properties are not labels.
  assert.equal(
    matches({ matchExpressions: [{ key: 'constructor', operator: 'Exists' }] }, {}),
    false,
  );
});

test('the empty selector', () => {
  assert.equal(isEmptySelector({}), true);
  assert.equal(isEmptySelector({ matchLabels: {}, matchExpressions: [] }), true);
  assert.equal(isEmptySelector({ matchLabels: { a: 'b' } }), false);
});

test('selectorToString: Kubernetes text form, sorted; <all> for the empty selector', () => {
  assert.equal(selectorToString({}), '<all>');
  assert.equal(
    selectorToString({ matchLabels: { tier: 'front', app: 'web' } }),
    'app=web,tier=front',
  );
  assert.equal(
    selectorToString({
      matchLabels: { app: 'web' },
      matchExpressions: [
        { key: 'tier', operator: 'In', values: ['b', 'a'] },
        { key: 'env', operator: 'NotIn', values: ['prod'] },
        { key: 'legacy', operator: 'DoesNotExist' },
        { key: 'canary', operator: 'Exists' },
      ],
    }),
    'app=web,canary,env notin (prod),!legacy,tier in (a,b)',
  );
});

test('invalid selectors are refused with the path of the bad part', () => {
  const service = (selector: unknown) => ({
    apiVersion: 'meshd.io/v1alpha1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { addresses: ['10.96.0.1'], ports: [{ port: 80 }], selector },
  });
  const errorsOf = (selector: unknown) => {
    const r = validateResource(service(selector));
    return r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`);
  };
  const p = 'spec.selector.matchExpressions[0]';
  assert.deepEqual(errorsOf({ matchExpressions: [{ key: 'a', operator: 'In' }] }), [
    `${p}.values: operator In needs at least one value`,
  ]);
  assert.deepEqual(errorsOf({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: [] }] }), [
    `${p}.values: operator NotIn needs at least one value`,
  ]);
  assert.deepEqual(
    errorsOf({ matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] }),
    [`${p}.values: operator Exists takes no values`],
  );
  assert.deepEqual(
    errorsOf({ matchExpressions: [{ key: 'a', operator: 'DoesNotExist', values: ['x'] }] }),
    [`${p}.values: operator DoesNotExist takes no values`],
  );
  assert.deepEqual(
    errorsOf({ matchExpressions: [{ key: 'a', operator: 'Exists', values: [] }] }),
    [],
  );
  assert.deepEqual(
    errorsOf({ matchExpressions: [{ key: 'a', operator: 'Equals', values: ['x'] }] }),
    [`${p}.operator: must be one of In, NotIn, Exists, DoesNotExist, got "Equals"`],
  );
  assert.deepEqual(errorsOf({ matchExpressions: [{ key: '-a', operator: 'Exists' }] }), [
    `${p}.key: name part must consist of letters, digits, "-", "_" or ".", starting and ending with a letter or digit`,
  ]);
  assert.deepEqual(
    errorsOf({ matchExpressions: [{ key: 'a', operator: 'In', values: ['not valid'] }] }),
    [
      `${p}.values[0]: must consist of letters, digits, "-", "_" or ".", starting and ending with a letter or digit (or be empty)`,
    ],
  );
  assert.deepEqual(errorsOf({ matchLabels: { app: 'web', 'x/y/z': 'a' } }), [
    'spec.selector.matchLabels[x/y/z]: invalid key: name part must consist of letters, digits, "-", "_" or ".", starting and ending with a letter or digit',
  ]);
  assert.deepEqual(errorsOf({ matchLabels: { app: 1 } }), [
    'spec.selector.matchLabels[app]: expected string, got number',
  ]);
  assert.deepEqual(errorsOf({ matchLabels: { app: 'web' }, podSelector: {} }), [
    'spec.selector.podSelector: unknown field (known fields: matchExpressions, matchLabels)',
  ]);
  assert.deepEqual(errorsOf('app=web'), ['spec.selector: expected object, got string']);
});
