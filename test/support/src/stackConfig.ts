/**
 * Where the local stack listens and what it names its topics: the same variables and defaults as
 * scripts/lib/env.sh, so tests reach whatever `npm run stack:up` started (both checked against
 * services/tally/src/config.ts by its configSources.unit.spec.ts).
 */
export interface StackConfig {
  readonly kafkaBrokers: readonly string[];
  readonly schemaRegistryUrl: string;
  readonly databaseUrl: string;
  readonly testDatabaseUrl: string;
  readonly redisUrl: string;
  readonly usageTopic: string;
  readonly usageTopicPartitions: number;
  readonly dlqTopic: string;
  readonly dlqTopicPartitions: number;
  readonly ledgerTopic: string;
  readonly ledgerTopicPartitions: number;
  /** Where the EventStoreDB conformance suite looks for a server (docker-compose.yml's, by default). */
  readonly eventStoreDbConnectionString: string;
}

export function readStackConfig(env: NodeJS.ProcessEnv): StackConfig {
  return {
    kafkaBrokers: (env.TALLY_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',').map((broker) => broker.trim()),
    schemaRegistryUrl: env.TALLY_SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7',
    databaseUrl: env.TALLY_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/tally',
    testDatabaseUrl: env.TALLY_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/tally_test',
    redisUrl: env.TALLY_REDIS_URL ?? 'redis://127.0.0.1:6379',
    usageTopic: env.TALLY_USAGE_TOPIC ?? 'usage-events',
    usageTopicPartitions: Number(env.TALLY_USAGE_TOPIC_PARTITIONS ?? 6),
    dlqTopic: env.TALLY_DLQ_TOPIC ?? 'usage-events.dlq',
    dlqTopicPartitions: Number(env.TALLY_DLQ_TOPIC_PARTITIONS ?? 3),
    ledgerTopic: env.TALLY_LEDGER_TOPIC ?? 'credit-ledger',
    ledgerTopicPartitions: Number(env.TALLY_LEDGER_TOPIC_PARTITIONS ?? 6),
    eventStoreDbConnectionString: env.TALLY_EVENTSTORE_CONNECTION_STRING ?? 'esdb://127.0.0.1:2113?tls=false',
  };
}

export const stackConfig: StackConfig = readStackConfig(process.env);
