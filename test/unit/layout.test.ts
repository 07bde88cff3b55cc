// The folder rules of DESIGN §2, checked on the TypeScript sources so a violation fails CI
// instead of waiting for review.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const root = resolve(new URL('../../..', import.meta.url).pathname);

function sources(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (name === 'build' || name === 'node_modules') return [];
    if (statSync(join(root, path)).isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

interface Import {
  from: string;
  spec: string;
  target: string; // repo-relative path for relative imports, else the module name
}

function importsOf(file: string): Import[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map((m) => {
    const spec = m[1] ?? '';
    const target = spec.startsWith('.') ? relative(root, resolve(root, dirname(file), spec)) : spec;
    return { from: file, spec, target };
  });
}

const all = ['daemon', 'cni', 'ctl'].flatMap(sources).flatMap(importsOf);
const folderOf = (path: string) => path.split('/').slice(0, 2).join('/');
const violations = (pred: (i: Import) => boolean) =>
  all.filter(pred).map((i) => `${i.from} imports '${i.spec}'`);

test('every daemon folder has an index.ts public face', () => {
  const folders = readdirSync(join(root, 'daemon')).filter((n) =>
    statSync(join(root, 'daemon', n)).isDirectory(),
  );
  for (const f of folders) {
    assert.ok(statSync(join(root, 'daemon', f, 'index.ts')).isFile(), `daemon/${f}/index.ts`);
  }
});

test('other folders import a daemon folder only through its index.ts', () => {
  const bad = violations(
    (i) =>
      i.target.startsWith('daemon/') &&
      i.target.split('/').length > 2 &&
      folderOf(i.target) !== folderOf(i.from) &&
      !i.target.endsWith('/index.js'),
  );
  assert.deepEqual(bad, []);
});

test('model/ and policy/ stay pure', () => {
  const impure = /^node:(net|tls|http2?|fs|child_process|dgram|dns|timers)/;
  const bad = violations(
    (i) =>
      /^daemon\/(model|policy)\//.test(i.from) &&
      (impure.test(i.spec) || i.spec === 'pino' || i.spec === 'prom-client'),
  );
  assert.deepEqual(bad, []);
});

test('agent, server and waypoint never import each other', () => {
  const roles = ['daemon/agent', 'daemon/server', 'daemon/waypoint'];
  const bad = violations(
    (i) =>
      roles.includes(folderOf(i.from)) &&
      roles.includes(folderOf(i.target)) &&
      folderOf(i.from) !== folderOf(i.target),
  );
  assert.deepEqual(bad, []);
});

test('only daemon/net imports daemon/native; nothing in daemon/ or cni/ imports ctl/', () => {
  const bad = violations(
    (i) =>
      (i.target.startsWith('daemon/native') && !/^daemon\/(net|native)\//.test(i.from)) ||
      (i.target.startsWith('ctl') && /^(daemon|cni)\//.test(i.from)),
  );
  assert.deepEqual(bad, []);
});
