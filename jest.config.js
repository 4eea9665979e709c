// One jest config for the whole monorepo: tests run against the TypeScript sources
// (swc strips types; `tsc` type-checks separately in `npm test`).
const packages = {
  '@tally/schemas': 'schemas',
  '@tally/domain': 'services/domain',
  '@tally/postgres': 'services/postgres',
  '@tally/kafka': 'services/kafka',
  '@tally/event-store': 'services/event-store',
  '@tally/catalog': 'services/catalog',
  '@tally/ledger': 'services/ledger',
  '@tally/subscriptions': 'services/subscriptions',
  '@tally/metering': 'services/metering',
  '@tally/projections': 'projections',
  '@tally/ledger-relay': 'services/ledger-relay',
  '@tally/metrics': 'services/metrics',
  '@tally/runtime': 'services/runtime',
  '@tally/webhooks': 'services/webhooks',
  '@tally/api': 'services/api',
  '@tally/tally': 'services/tally',
  '@tally/test-support': 'test/support',
};

const moduleNameMapper = Object.fromEntries(
  Object.entries(packages).map(([name, dir]) => [`^${name}$`, `<rootDir>/${dir}/src/index.ts`]),
);

const transform = {
  '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }],
  // cookie 2 (required by light-my-request, which Fastify's inject() loads) ships only ES
  // modules; Node 20 can require them, jest's CommonJS runtime cannot, so swc converts it.
  '/node_modules/cookie/.+\\.js$': ['@swc/jest', { jsc: { target: 'es2022' } }],
  // content-disposition 3 (required by @fastify/static 10) likewise.
  '/node_modules/content-disposition/.+\\.js$': ['@swc/jest', { jsc: { target: 'es2022' } }],
  // The zstd codec's WebAssembly build is an ES module too (loaded with import() in production).
  '/node_modules/@hpcc-js/wasm-zstd/.+\\.js$': ['@swc/jest', { jsc: { target: 'es2022' } }],
};

const common = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform,
  moduleNameMapper,
  modulePathIgnorePatterns: ['<rootDir>/.*/dist/'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  transformIgnorePatterns: ['/node_modules/(?!cookie/|content-disposition/|@hpcc-js/wasm-zstd/)'],
};

module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/**/*.unit.spec.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/**/*.int.spec.ts', '<rootDir>/test/**/*.e2e.spec.ts'],
    },
  ],
  // A global option (jest ignores it inside projects): integration tests wait on real
  // services with their own deadlines, well inside this bound.
  testTimeout: 120000,
};
