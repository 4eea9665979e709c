import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * The layering rules as `npm run lint` runs them: the repository's own eslint.config.mjs, in a
 * child process (ESLint loads its ES-module config there, not in jest), fed deliberate
 * violations at paths inside the packages they would break.
 */
const ROOT = path.resolve(__dirname, '..', '..');

interface Case {
  readonly file: string;
  readonly code: string;
}

function lint(cases: readonly Case[]): string[][] {
  const script = `
    const { ESLint } = require('eslint');
    (async () => {
      const eslint = new ESLint({ cwd: ${JSON.stringify(ROOT)} });
      const out = [];
      for (const { file, code } of JSON.parse(process.argv[1])) {
        const [result] = await eslint.lintText(code, { filePath: file });
        out.push(result.messages.filter((m) => m.ruleId === 'tally/layering' || m.ruleId === 'no-restricted-imports').map((m) => m.message));
      }
      process.stdout.write(JSON.stringify(out));
    })().catch((error) => { console.error(error); process.exit(1); });`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script, JSON.stringify(cases)], { cwd: ROOT, encoding: 'utf8' })) as string[][];
}

describe('the layering rules of the lint step', () => {
  const violations: Array<[string, Case, RegExp]> = [
    ['the domain importing a database driver', { file: 'services/domain/src/bad.ts', code: "import { Pool } from 'pg';\nexport const p = Pool;\n" }, /pure decider/],
    ['the domain importing node:fs', { file: 'services/domain/src/bad.ts', code: "import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n" }, /pure decider/],
    ['the domain importing Kafka', { file: 'services/domain/src/bad.ts', code: "import { Kafka } from 'kafkajs';\nexport const k = Kafka;\n" }, /pure decider/],
    ['the domain importing an adapter package', { file: 'services/domain/src/bad.ts', code: "import { createPool } from '@tally/postgres';\nexport const c = createPool;\n" }, /dependencies point inward/],
    ["a package importing another's file by its package name", { file: 'services/api/src/bad.ts', code: "import { ledgerEventId } from '@tally/ledger/src/ledgerEventId';\nexport const l = ledgerEventId;\n" }, /another package's files/],
    ["a package importing another's file by a relative path", { file: 'services/api/src/bad.ts', code: "import { x } from '../../ledger/src/ledgerService';\nexport const l = x;\n" }, /another package's files/],
    ['a package wiring another package', { file: 'services/api/src/bad.ts', code: "import { createLedgerService } from '@tally/ledger';\nexport const l = createLedgerService;\n" }, /only the deployable/],
    ['production code importing the deployable', { file: 'services/api/src/bad.ts', code: "import { toAvroUsageEvent } from '@tally/tally';\nexport const t = toAvroUsageEvent;\n" }, /is the deployable/],
    ['production code importing the test support', { file: 'services/ledger/src/bad.ts', code: "import { waitFor } from '@tally/test-support';\nexport const w = waitFor;\n" }, /is for tests/],
    ['production code importing a test helper of its own package', { file: 'services/ledger/src/bad.ts', code: "import { helper } from './testing/helper';\nexport const h = helper;\n" }, /is for tests/],
    ['production code importing an undeclared package', { file: 'services/catalog/src/bad.ts', code: "import { createKafka } from '@tally/kafka';\nexport const k = createKafka;\n" }, /not declared in services\/catalog\/package.json/],
    ['a test importing an undeclared package', { file: 'services/metrics/src/bad.int.spec.ts', code: "import { waitFor } from '@tally/test-support';\nexport const w = waitFor;\n" }, /not declared in services\/metrics\/package.json/],
  ];
  const allowed: Array<[string, Case]> = [
    ['the deployable wiring packages', { file: 'services/tally/src/ok.ts', code: "import { createLedgerService } from '@tally/ledger';\nexport const l = createLedgerService;\n" }],
    ['a package taking another package’s types', { file: 'services/api/src/ok.ts', code: "import type { LedgerService } from '@tally/ledger';\nexport type L = LedgerService;\n" }],
    ['an adapter using the one Kafka client factory', { file: 'services/metering/src/ok.ts', code: "import { createKafka } from '@tally/kafka';\nexport const k = createKafka;\n" }],
    ['a role built on the runtime’s worker and processor', { file: 'services/ledger-relay/src/ok.ts', code: "import { createCheckpointedProcessor, createWorker } from '@tally/runtime';\nexport const r = [createCheckpointedProcessor, createWorker];\n" }],
    ['a test using its declared test support and a helper in src/testing/', { file: 'services/ledger/src/ok.int.spec.ts', code: "import { waitFor } from '@tally/test-support';\nimport { h } from './testing/helper';\nexport const w = [waitFor, h];\n" }],
    ['the domain using the schemas', { file: 'services/domain/src/ok.ts', code: "import { usageEventAvroSchema } from '@tally/schemas';\nexport const s = usageEventAvroSchema;\n" }],
  ];

  const results = lint([...violations.map(([, c]) => c), ...allowed.map(([, c]) => c)]);

  it.each(violations.map(([name, , expected], index) => [name, expected, index] as const))('fails on %s', (_name, expected, index) => {
    expect(results[index]!.join('\n')).toMatch(expected);
  });

  it.each(allowed.map(([name], index) => [name, violations.length + index] as const))('lets %s pass', (_name, index) => {
    expect(results[index]).toEqual([]);
  });
});
