'use strict';
/**
 * Tally's layering as an ESLint rule, so `npm run lint` (and with it `npm test`) fails on a
 * violation. A package is used through its name and index only; only the deployable
 * (services/tally) creates other packages' adapters and services and hands them to each other;
 * test helpers live in `src/testing/` and what tests import is declared in the package's
 * package.json (devDependencies for test-only packages). The domain's ban on I/O is the
 * `no-restricted-imports` block for services/domain in eslint.config.mjs.
 */
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const DEPLOYABLE = 'services/tally';
/**
 * Client factories of the infrastructure packages (the one Kafka client factory, the pool, the
 * registry) are for every adapter; so are the runtime's (the one retry, worker lifecycle and
 * checkpointed processor), which every background role is built on.
 */
const INFRASTRUCTURE = new Set(['@tally/kafka', '@tally/postgres', '@tally/metrics', '@tally/runtime']);
const TEST_ONLY = /^(@tally\/test-support|jest|fast-check|@jest\/.+)$/;

const packages = new Map();
/** The workspace package holding a path: its folder relative to the root ('' for the root) and its package.json. */
function packageOf(file) {
  let dir = path.dirname(file);
  const seen = [];
  while (dir.startsWith(ROOT) && dir !== ROOT) {
    if (packages.has(dir)) break;
    seen.push(dir);
    if (fs.existsSync(path.join(dir, 'package.json')) && !dir.includes(`${path.sep}node_modules${path.sep}`)) {
      packages.set(dir, { dir: path.relative(ROOT, dir).split(path.sep).join('/'), json: JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) });
      break;
    }
    dir = path.dirname(dir);
  }
  const found = packages.get(dir) ?? { dir: '', json: undefined };
  for (const inner of seen) packages.set(inner, found);
  return found;
}

/** Specs, `src/testing/` helpers and everything under test/ are test code. */
function isTestCode(relative) {
  return /\.spec\.ts$/.test(relative) || relative.includes('/src/testing/') || relative.startsWith('test/');
}

module.exports = {
  meta: {
    type: 'problem',
    docs: { description: "Tally's package layering (README, Repository layout)" },
    schema: [],
    messages: {
      internals: "'{{source}}' reaches into another package's files: import it by its name, through its index",
      deployable: "'{{source}}' is the deployable: nothing but tests imports it",
      wiring: "only the deployable (services/tally) creates other packages' parts: take {{name}}'s result as a dependency instead",
      testOnly: "'{{source}}' is for tests: production code may not import it (test helpers live in src/testing/)",
      undeclared: "'{{name}}' is not declared in {{dir}}/package.json ({{where}})",
    },
  },
  create(context) {
    const file = context.filename ?? context.getFilename();
    const relative = path.relative(ROOT, file).split(path.sep).join('/');
    if (relative.startsWith('..')) return {};
    const own = packageOf(file);
    const testCode = isTestCode(relative);

    function check(node, source, specifiers, typeOnly) {
      if (typeof source !== 'string') return;
      const report = (messageId, data = {}) => context.report({ node, messageId, data: { source, ...data } });
      if (source.startsWith('.')) {
        const target = path.resolve(path.dirname(file), source);
        if (packageOf(path.join(target, 'x')).dir !== own.dir && packageOf(target).dir !== own.dir) report('internals');
        else if (!testCode && /(^|\/)testing(\/|$)/.test(path.relative(path.dirname(file), target).split(path.sep).join('/'))) report('testOnly');
        return;
      }
      if (/^@tally\/[^/]+\/./.test(source)) return report('internals');
      if (!testCode && TEST_ONLY.test(source)) return report('testOnly');
      const name = source.startsWith('@') ? source.split('/').slice(0, 2).join('/') : source.split('/')[0];
      if (!source.startsWith('@tally/')) return;
      if (name === '@tally/tally' && !testCode) return report('deployable');
      if (own.json !== undefined && name !== own.json.name) {
        const declared = testCode
          ? { ...own.json.dependencies, ...own.json.devDependencies }
          : { ...own.json.dependencies };
        if (declared[name] === undefined) {
          report('undeclared', { name, dir: own.dir, where: testCode ? 'dependencies or devDependencies' : 'dependencies' });
        }
      }
      if (testCode || typeOnly || own.dir === DEPLOYABLE || INFRASTRUCTURE.has(name)) return;
      for (const specifier of specifiers) {
        const imported = specifier.imported?.name;
        if (specifier.importKind !== 'type' && /^create[A-Z]/.test(imported ?? '')) report('wiring', { name: imported });
      }
    }

    return {
      ImportDeclaration: (node) => check(node, node.source.value, node.specifiers, node.importKind === 'type'),
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value, [], true),
      ExportAllDeclaration: (node) => check(node, node.source.value, [], true),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node, node.source.value, [], true),
    };
  },
};
