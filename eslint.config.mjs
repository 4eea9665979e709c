import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import layering from './scripts/lint/layering.cjs';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.tally/**', 'coverage/**', 'bench-results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-globals': ['error', { name: 'parseFloat', message: 'Amounts are exact: use @tally/domain credits parsing.' }],
    },
  },
  {
    // Packages are used through their index, only the deployable wires them, tests import what
    // their package declares (scripts/lint/layering.cjs; test/layering/layering.int.spec.ts).
    files: ['**/*.ts'],
    plugins: { tally: { rules: { layering } } },
    rules: { 'tally/layering': 'error' },
  },
  {
    files: ['services/domain/src/**/*.ts'],
    rules: {
      // The domain is a pure decider: no I/O, no clock, no randomness, and no other package but the schemas.
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                'node:*', 'fs', 'fs/*', 'net', 'http', 'https', 'http2', 'tls', 'dns', 'dgram', 'crypto', 'child_process',
                'worker_threads', 'cluster', 'os', 'pg', 'pg-*', 'kafkajs', '@kafkajs/*', 'ioredis', 'redis', '@eventstore/*',
                'fastify', '@fastify/*', 'undici', 'pino', 'prom-client',
              ],
              message: 'The domain is a pure decider: I/O belongs to the adapters.',
            },
            { group: ['@tally/*', '!@tally/schemas'], message: 'The domain depends on nothing of Tally but the schemas: dependencies point inward.' },
          ],
        },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "MemberExpression[object.name='Date'][property.name='now']", message: 'Time comes in as data.' },
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'Time comes in as data.' },
        { selector: "MemberExpression[object.name='Math'][property.name='random']", message: 'Randomness comes in as data.' },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { module: 'writable', require: 'readonly', __dirname: 'readonly', process: 'readonly', console: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
