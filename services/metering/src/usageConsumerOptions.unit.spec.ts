import pino from 'pino';
import type { CatalogCache } from '@tally/catalog';
import type { BalanceRegistry, UsageBalanceWrites } from '@tally/ledger';
import type { EventStore } from '@tally/event-store';
import { partitionsAtOnce, resolveUsageConsumerOptions, UsageConsumerOptionsError, type UsageConsumerOptions } from './usageConsumerOptions';

const valid: UsageConsumerOptions = {
  kafka: { brokers: ['127.0.0.1:9092'], clientId: 'tally' },
  groupId: 'tally-metering',
  topic: 'usage-events',
  dlqTopic: 'usage-events.dlq',
  registryUrl: 'http://127.0.0.1:8081/apis/ccompat/v7',
  eventStore: { appendMany: jest.fn(), readAppendTraces: jest.fn(), readEventsById: jest.fn(), readStreamsPaged: jest.fn() } as unknown as EventStore,
  balanceRegistry: { balancesOfCustomers: jest.fn(), registrationAges: jest.fn() } as unknown as BalanceRegistry,
  balanceWrites: { commands: { execute: jest.fn() }, states: { loadMany: jest.fn() } } as unknown as UsageBalanceWrites,
  catalogCache: { getProduct: jest.fn() } as unknown as CatalogCache,
  logger: pino({ level: 'silent' }),
};

describe('partitionsAtOnce', () => {
  it('meters two partitions at once by default, fewer when the topic has fewer, and what it is told', () => {
    expect([6, 2, 1, 0].map((partitions) => partitionsAtOnce(undefined, partitions))).toEqual([2, 2, 1, 1]);
    expect([partitionsAtOnce(6, 3), partitionsAtOnce(1, 6)]).toEqual([6, 1]);
  });
});

describe('resolveUsageConsumerOptions', () => {
  it('fills in the defaults', () => {
    expect(resolveUsageConsumerOptions(valid)).toMatchObject({
      batchSize: 1000,
      // Undefined: partitionsAtOnce decides when the consumer starts and knows the topic's partitions.
      partitionsConsumedConcurrently: undefined,
      maxFetchBytes: 1024 * 1024,
      maxFetchBytesPerPartition: 256 * 1024,
      fromBeginning: true,
      // The main job's default too (TALLY_CONSUMER_SESSION_TIMEOUT_MS).
      sessionTimeoutMs: 10_000,
      maxBackoffMs: 5000,
    });
  });

  it.each<[string, Partial<UsageConsumerOptions>, RegExp]>([
    ['no brokers', { kafka: { brokers: [], clientId: 'tally' } }, /kafka.brokers/],
    ['a broker without a port', { kafka: { brokers: ['localhost'], clientId: 'tally' } }, /host:port/],
    ['an empty client id', { kafka: { brokers: ['127.0.0.1:9092'], clientId: ' ' } }, /kafka.clientId/],
    ['no group', { groupId: '' }, /groupId/],
    ['the usage topic as DLQ', { dlqTopic: 'usage-events' }, /dlqTopic must differ/],
    // The rule of @tally/kafka's registryUrlProblem, as config.ts applies it.
    ['a registry URL that is not one', { registryUrl: 'localhost:8081' }, /^registryUrl: an http or https URL$/],
    // fetch() refuses a URL with credentials on every request: refused here, without echoing them.
    ['a registry URL with credentials', { registryUrl: 'http://tally:s3cret@127.0.0.1:8081/' }, /^registryUrl: no user:password@ in the URL; give them in registryAuth$/],
    ['an unparsable registry URL, not echoed', { registryUrl: 'http://tally:s3cret@[::1' }, /^registryUrl: an http or https URL$/],
    ['no event store', { eventStore: undefined as unknown as EventStore }, /eventStore is required/],
    ['a balance registry without the batch query', { balanceRegistry: {} as BalanceRegistry }, /balancesOfCustomers/],
    ['a zero batch size', { batchSize: 0 }, /batchSize must be an integer from 1/],
    ['a batch size beyond the bound', { batchSize: 100_001 }, /batchSize must be an integer from 1 to 100000/],
    ['a fractional concurrency', { partitionsConsumedConcurrently: 1.5 }, /partitionsConsumedConcurrently/],
    ['a zero concurrency', { partitionsConsumedConcurrently: 0 }, /partitionsConsumedConcurrently/],
    ['a tiny fetch', { maxFetchBytes: 100 }, /maxFetchBytes must be an integer/],
    ['a partition bound above the fetch bound', { maxFetchBytes: 1024 * 1024, maxFetchBytesPerPartition: 2 * 1024 * 1024 }, /must not exceed maxFetchBytes/],
    ['a session timeout below the broker minimum', { sessionTimeoutMs: 1000 }, /sessionTimeoutMs/],
  ])('refuses %s with a clear message', (_name, change, message) => {
    const attempt = () => resolveUsageConsumerOptions({ ...valid, ...change });
    expect(attempt).toThrow(UsageConsumerOptionsError);
    expect(attempt).toThrow(message);
  });
});
