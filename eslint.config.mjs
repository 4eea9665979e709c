import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
    files: ['services/domain/src/**/*.ts'],
    rules: {
      // The domain is a pure decider: no I/O, no clock, no randomness.
      'no-restricted-imports': ['error', { patterns: ['node:*', 'pg', 'kafkajs', 'ioredis', 'fs', 'crypto', 'net', 'http'] }],
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
