/**
 * config.ts's schema is the one definition of Tally's variables; everything else that states a
 * default or describes a variable is checked against it here, so they can no longer disagree.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readStackConfig } from '@tally/test-support';
import { parse } from 'yaml';
import { z } from 'zod';
import { configSchema } from './config';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
/** How the README and the scripts write the checkout's own folder. */
const CHECKOUT = '<checkout>';

const variables = Object.entries(configSchema.shape).map(([name, field]) => ({
  name,
  description: field.description,
  default: field instanceof z.ZodDefault ? String(field._def.defaultValue()).replace(ROOT, CHECKOUT) : undefined,
}));
const defaultOf = (name: string): string | undefined => variables.find((variable) => variable.name === name)?.default;

/** README rows `| \`NAME\`[, \`NAME\`] | default | meaning |`, from every table that has them. */
const readmeRows = [...read('README.md').matchAll(/^\| (`TALLY_[A-Z_]+`(?:, `TALLY_[A-Z_]+`)*) \| (.*?) \| (.*) \|$/gm)].flatMap((row) =>
  [...row[1]!.matchAll(/`(TALLY_[A-Z_]+)`/g)].map((name) => ({ name: name[1]!, default: row[2]!, description: row[3]! })),
);

/** `export NAME="${NAME:-default}"` lines of the scripts' defaults. */
const scriptDefaults = new Map(
  [...read('scripts/lib/env.sh').matchAll(/^export (TALLY_[A-Z_]+)="\$\{\1:-(.*)\}"$/gm)].map((line) => [
    line[1]!,
    line[2]!.replace('$TALLY_ROOT', CHECKOUT),
  ]),
);

/**
 * The text of the local stack's scripts and the test helpers: what reads the README's variables
 * that are not the main job's (`TALLY_POSTGRES_TLS`, `TALLY_TEST_LOG_LEVEL`, the topics' partitions).
 */
const stackSources = ['scripts', 'test/support/src'].flatMap((folder) =>
  readdirSync(path.join(ROOT, folder), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => readFileSync(path.join(entry.parentPath, entry.name), 'utf8')),
);

describe("the configuration schema (services/tally/src/config.ts)", () => {
  it('describes every variable', () => {
    expect(variables.filter((variable) => !variable.description).map((variable) => variable.name)).toEqual([]);
  });

  it.each(variables.map((variable) => [variable.name, variable] as const))("%s has a README row with the schema's default and description", (_name, variable) => {
    const rows = readmeRows.filter((row) => row.name === variable.name);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      if (variable.default === undefined) expect(row.default).toMatch(/^unset/);
      else expect(row.default).toBe(`\`${variable.default}\``);
    }
    expect(rows.map((row) => row.description)).toContain(variable.description);
  });

  it('has a variable for every README row, unless the scripts or the test helpers read it', () => {
    const defined = new Set(variables.map((variable) => variable.name));
    const readByTheStack = (name: string) => stackSources.some((text) => new RegExp(`\\b${name}\\b`).test(text));
    const documented = [...new Set(readmeRows.map((row) => row.name))];
    expect(documented.filter((name) => !defined.has(name) && !readByTheStack(name))).toEqual([]);
    // The rows outside the schema are few and the stack's own: a loose pattern would let any through.
    expect(documented.filter((name) => !defined.has(name)).length).toBeLessThan(15);
  });

  it("matches the scripts' defaults (scripts/lib/env.sh)", () => {
    const shared = [...scriptDefaults.keys()].filter((name) => defaultOf(name) !== undefined);
    expect(shared.length).toBeGreaterThan(5);
    for (const name of shared) expect([name, scriptDefaults.get(name)]).toEqual([name, defaultOf(name)]);
  });

  it("gives the README's stack-only variables the scripts' defaults", () => {
    for (const row of readmeRows.filter((candidate) => scriptDefaults.has(candidate.name))) {
      expect([row.name, row.default]).toEqual([row.name, `\`${scriptDefaults.get(row.name)}\``]);
    }
  });

  it("matches the tests' view of the stack (test/support's stackConfig)", () => {
    const stack = readStackConfig({});
    expect({
      TALLY_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
      TALLY_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
      TALLY_DATABASE_URL: stack.databaseUrl,
      TALLY_REDIS_URL: stack.redisUrl,
      TALLY_USAGE_TOPIC: stack.usageTopic,
      TALLY_DLQ_TOPIC: stack.dlqTopic,
      TALLY_LEDGER_TOPIC: stack.ledgerTopic,
      TALLY_EVENTSTORE_CONNECTION_STRING: stack.eventStoreDbConnectionString,
    }).toEqual(Object.fromEntries(['TALLY_KAFKA_BROKERS', 'TALLY_SCHEMA_REGISTRY_URL', 'TALLY_DATABASE_URL', 'TALLY_REDIS_URL', 'TALLY_USAGE_TOPIC', 'TALLY_DLQ_TOPIC', 'TALLY_LEDGER_TOPIC', 'TALLY_EVENTSTORE_CONNECTION_STRING'].map((name) => [name, defaultOf(name)])));
    expect({
      TALLY_TEST_DATABASE_URL: stack.testDatabaseUrl,
      TALLY_USAGE_TOPIC_PARTITIONS: String(stack.usageTopicPartitions),
      TALLY_DLQ_TOPIC_PARTITIONS: String(stack.dlqTopicPartitions),
      TALLY_LEDGER_TOPIC_PARTITIONS: String(stack.ledgerTopicPartitions),
    }).toEqual(Object.fromEntries(['TALLY_TEST_DATABASE_URL', 'TALLY_USAGE_TOPIC_PARTITIONS', 'TALLY_DLQ_TOPIC_PARTITIONS', 'TALLY_LEDGER_TOPIC_PARTITIONS'].map((name) => [name, scriptDefaults.get(name)])));
  });

  it("sets only variables the schema knows in docker-compose.yml's tally service, with the topics' defaults, its API published", () => {
    const compose = parse(read('docker-compose.yml'), { merge: true }) as {
      services: Record<string, { environment?: Record<string, string>; ports?: string[] }>;
    };
    const tally = compose.services.tally!;
    const environment = tally.environment ?? {};
    const known = new Set([...variables.map((variable) => variable.name), ...scriptDefaults.keys()]);
    expect(Object.keys(environment).filter((name) => !known.has(name))).toEqual([]);
    expect(Object.keys(compose.services['tally-eventstoredb']?.environment ?? {}).filter((name) => !known.has(name))).toEqual([]);
    for (const name of ['TALLY_USAGE_TOPIC', 'TALLY_DLQ_TOPIC', 'TALLY_LEDGER_TOPIC']) expect([name, environment[name]]).toEqual([name, defaultOf(name)]);
    expect(tally.ports).toContain(`127.0.0.1:${defaultOf('TALLY_API_PORT')}:${environment.TALLY_API_PORT ?? defaultOf('TALLY_API_PORT')}`);
  });
});
