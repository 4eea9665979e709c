import type { Admin } from 'kafkajs';
import { createTestKafka } from './createTestKafka';
import { createTestTopic, deleteTopics } from './createTestTopic';
import { freePort } from './freePort';
import { createTestSchema, type TestSchema } from './postgres';
import { stackConfig } from './stackConfig';
import { startTallyProcess, type TallyProcess } from './tallyProcess';
import { uniqueName } from './uniqueName';

/** Every role the main job has, as TALLY_ROLES spells them. */
export const EVERY_ROLE = 'consumer,projector,api,relay,scheduler,webhooks';

export interface WholeMainJob {
  readonly tally: TallyProcess;
  /** `http://127.0.0.1:<port>`: the API, /metrics and /docs. */
  readonly base: string;
  /** The schema it runs on, for a `tally` command against the same event store. */
  readonly db: TestSchema;
  /** The environment it runs with: a `tally` command given it works on the same schema, topics and Redis prefix. */
  readonly env: Readonly<Record<string, string>>;
  /** Stops the process and drops the schema and topics it ran on. */
  stop(): Promise<void>;
}

/**
 * The main job with every role on a schema, topics, Redis prefix and consumer group of its own,
 * as a deployment runs it: for tests of what the whole process serves (its /metrics, its OpenAPI
 * document). `env` adds to or overrides its environment (e.g. a session secret for the console).
 */
export async function startWholeMainJob(options: { readonly prefix: string; readonly apiKey: string; readonly env?: Readonly<Record<string, string>> }): Promise<WholeMainJob> {
  const db: TestSchema = await createTestSchema({ prefix: options.prefix });
  const admin: Admin = createTestKafka(uniqueName(options.prefix)).admin();
  const topics: string[] = [];
  let tally: TallyProcess | undefined;
  const stop = async () => {
    await tally?.kill('SIGTERM');
    await deleteTopics(admin, topics).catch(() => undefined);
    await admin.disconnect();
    await db.drop();
  };
  try {
    await admin.connect();
    for (const part of ['usage', 'dlq', 'ledger']) topics.push(await createTestTopic(admin, { prefix: `${options.prefix}_${part}` }));
    const [usage, deadLetters, ledger] = topics as [string, string, string];
    const port = await freePort();
    const env = {
      TALLY_ROLES: EVERY_ROLE,
      TALLY_DATABASE_URL: stackConfig.testDatabaseUrl,
      TALLY_DATABASE_SCHEMA: db.schema,
      TALLY_REDIS_KEY_PREFIX: uniqueName(options.prefix),
      TALLY_USAGE_TOPIC: usage,
      TALLY_DLQ_TOPIC: deadLetters,
      TALLY_LEDGER_TOPIC: ledger,
      TALLY_CONSUMER_GROUP: uniqueName(options.prefix),
      TALLY_API_PORT: String(port),
      TALLY_API_KEYS: options.apiKey,
      ...options.env,
    };
    tally = await startTallyProcess({ env });
    return { tally, base: `http://127.0.0.1:${port}`, db, env, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
