// One jest config for the whole monorepo: tests run against the TypeScript sources
// (swc strips types; `tsc` type-checks separately in `npm test`).
const packages = {
  '@tally/schemas': 'schemas',
  '@tally/domain': 'services/domain',
  '@tally/postgres': 'services/postgres',
  '@tally/event-store': 'services/event-store',
  '@tally/catalog': 'services/catalog',
  '@tally/ledger': 'services/ledger',
  '@tally/subscriptions': 'services/subscriptions',
  '@tally/metering': 'services/metering',
  '@tally/projections': 'projections',
  '@tally/ledger-relay': 'services/ledger-relay',
  '@tally/api': 'services/api',
  '@tally/app': 'services/tally',
  '@tally/test-support': 'test/support',
};

const moduleNameMapper = Object.fromEntries(
  Object.entries(packages).map(([name, dir]) => [`^${name}$`, `<rootDir>/${dir}/src/index.ts`]),
);

const transform = {
  '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }],
};

const common = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform,
  moduleNameMapper,
  modulePathIgnorePatterns: ['<rootDir>/.*/dist/'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
};

module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/**/*.unit.spec.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/**/*.int.spec.ts', '<rootDir>/test/**/*.e2e.spec.ts'],
      testTimeout: 120000,
    },
  ],
};
