import { setTimeout as delay } from 'node:timers/promises';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createPool, migrate, quoteIdentifier } from '@tally/postgres';
import { topicValueSubject } from '@tally/schemas';
import {
  createTestKafka,
  createTestRegistry,
  stackConfig,
  startTallyProcess,
  uniqueName,
  type TallyProcess,
} from '@tally/test-support';
import { Redis } from 'ioredis';
import type { Admin, Kafka } from 'kafkajs';
import type { Pool } from 'pg';
import pino, { type Logger } from 'pino';
import type { BenchOptions } from './benchOptions';
import { progress } from './progress';

const BENCH_STATEMENT_TIMEOUT_MS = 60 * 60_000;

/**
 * Everything one `npm run bench` owns: a migrated schema `bench_<id>` in the tally database, a
 * Redis key prefix, topics, consumer groups and registry subjects named after the same id, and
 * the Tally processes it starts. Nothing is shared with other users of the stack, and close()
 * removes it all again (unless --keep).
 */
export interface BenchRun {
  readonly id: string;
  readonly options: BenchOptions;
  readonly schema: string;
  readonly keyPrefix: string;
  readonly logger: Logger;
  readonly pool: Pool;
  readonly eventStore: EventStore;
  readonly catalog: CatalogStore;
  readonly redis: Redis;
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly registry: SchemaRegistry;
  /** `<id>_<suffix>`, for the run's topics, groups and extra schemas. */
  name(suffix: string): string;
  createTopic(suffix: string, create: (topic: string) => Promise<void>): Promise<string>;
  createSchema(suffix: string): Promise<{ schema: string; pool: Pool; eventStore: EventStore }>;
  /** A consumer group name whose committed offsets are deleted at the end. */
  group(suffix: string): string;
  /** Starts the real main job with the run's schema, key prefix and client id; stopped at close() at the latest. */
  startTally(roles: string, env?: Readonly<Record<string, string>>, nodeArgs?: readonly string[]): Promise<TallyProcess>;
  close(): Promise<void>;
}

export async function createBenchRun(options: BenchOptions): Promise<BenchRun> {
  const id = uniqueName('bench');
  // Warnings only: the services' info logs would bury the progress lines.
  const logger = pino({ level: process.env.TALLY_BENCH_LOG_LEVEL ?? 'warn' });
  const removals: Array<{ what: string; remove: () => Promise<unknown> }> = [];
  const closings: Array<() => Promise<unknown>> = [];
  const groups: string[] = [];
  const tallies = new Set<TallyProcess>();

  async function schemaPool(schema: string, max: number): Promise<{ pool: Pool; eventStore: EventStore }> {
    // The bench loads and copies millions of rows on purpose: statements far longer than the
    // service's bound (createPool's default 30 s), so it gets one sized for that.
    const pool = createPool({
      connectionString: stackConfig.databaseUrl,
      schema,
      max,
      applicationName: `tally-${schema}`,
      statementTimeoutMillis: BENCH_STATEMENT_TIMEOUT_MS,
      logger,
    });
    closings.push(() => pool.end());
    // Registered before migrating, so that a failed migration's half-made schema goes too.
    removals.push({ what: `schema ${schema}`, remove: () => pool.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`) });
    await migrate({ pool, schema, logger });
    const eventStore = createPostgresEventStore({ pool, logger });
    closings.push(() => eventStore.close());
    return { pool, eventStore };
  }

  let cleaning: Promise<void> | undefined;
  /** Once only, however often asked (Ctrl-C during the end of a run): last made, first removed. */
  function cleanUp(): Promise<void> {
    cleaning ??= (async () => {
      // A phase that failed may have left its Tally running: it must not outlive the bench.
      await Promise.all([...tallies].map((tally) => tally.kill('SIGKILL')));
      if (options.keep) progress(`--keep: left schema ${id}*, topics ${id}_*, groups and Redis keys ${id}:* in place`);
      else for (const { what, remove } of [...removals].reverse()) await removeWithRetries(what, remove);
      for (const close of [...closings].reverse()) await close().catch(() => undefined);
    })();
    return cleaning;
  }

  try {
    return await connectRun();
  } catch (error) {
    // Whatever was made before the failure (a migrated schema, say) goes, as at the end of a run.
    await cleanUp();
    throw error;
  }

  async function connectRun(): Promise<BenchRun> {
    const { pool, eventStore } = await schemaPool(id, 8);
    const redis = new Redis(stackConfig.redisUrl, { maxRetriesPerRequest: 3 });
    closings.push(async () => redis.disconnect());
    removals.push({ what: `Redis keys ${id}:*`, remove: () => deleteKeys(redis, `${id}:*`) });
    const kafka = createTestKafka(id);
    const admin = kafka.admin();
    await admin.connect();
    closings.push(() => admin.disconnect());
    removals.push({
      what: 'consumer groups',
      remove: async () => {
        // The broker deletes each group on its own: one that still has a member (after a failed
        // phase) fails alone, and is no reason to retry the others.
        if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
      },
    });
    const registry = createTestRegistry();

    const run: BenchRun = {
      id,
      options,
      schema: id,
      keyPrefix: id,
      logger,
      pool,
      eventStore,
      catalog: createPostgresCatalogStore({ pool, logger }),
      redis,
      kafka,
      admin,
      registry,
      name: (suffix) => `${id}_${suffix}`,

      async createTopic(suffix, create) {
        const topic = run.name(suffix);
        removals.push({ what: `topic ${topic}`, remove: () => admin.deleteTopics({ topics: [topic] }) });
        removals.push({ what: `registry subject ${topicValueSubject(topic)}`, remove: () => deleteSubject(topicValueSubject(topic)) });
        await create(topic);
        return topic;
      },

      async createSchema(suffix) {
        const schema = run.name(suffix);
        return { schema, ...(await schemaPool(schema, 4)) };
      },

      group(suffix) {
        const group = run.name(suffix);
        groups.push(group);
        return group;
      },

      async startTally(roles, env = {}, nodeArgs = []) {
        const tally = await startTallyProcess({
          env: {
            TALLY_ROLES: roles,
            TALLY_DATABASE_URL: stackConfig.databaseUrl,
            TALLY_DATABASE_SCHEMA: id,
            TALLY_REDIS_KEY_PREFIX: id,
            TALLY_KAFKA_CLIENT_ID: id,
            TALLY_LOG_LEVEL: 'info',
            ...env,
          },
          nodeArgs,
          ...(options.tallyMain !== undefined ? { main: options.tallyMain } : {}),
          readyTimeoutMs: 120_000,
        });
        tallies.add(tally);
        void tally.exited().then(() => tallies.delete(tally));
        return tally;
      },

      close: cleanUp,
    };
    return run;
  }
}

/** A few tries: a fault test elsewhere may have the shared broker down for a few seconds. */
async function removeWithRetries(what: string, remove: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await remove();
      return;
    } catch (error) {
      if (attempt === 3) {
        progress(`could not remove ${what}, left in place: ${String(error)}`);
        return;
      }
      progress(`could not remove ${what} (${String(error)}); trying again in 5 s`);
      await delay(5000);
    }
  }
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  const stream = redis.scanStream({ match: pattern, count: 1000 });
  for await (const keys of stream as AsyncIterable<string[]>) {
    if (keys.length > 0) await redis.unlink(...keys);
  }
}

/** Soft then permanent deletion: the Confluent API keeps a soft-deleted subject's versions. */
async function deleteSubject(subject: string): Promise<void> {
  const url = `${stackConfig.schemaRegistryUrl}/subjects/${encodeURIComponent(subject)}`;
  await fetch(url, { method: 'DELETE' });
  await fetch(`${url}?permanent=true`, { method: 'DELETE' });
}
