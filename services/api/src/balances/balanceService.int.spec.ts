import { createPostgresCatalogStore } from '@tally/catalog';
import { balanceStreamId, creditProductFromDto, parseCredits } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, type LedgerService } from '@tally/ledger';
import { createBalanceReadModel } from '@tally/projections';
import { createTestSchema, stackConfig, uniqueName, type TestSchema } from '@tally/test-support';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createBalanceService, type BalanceService } from './balanceService';
import { createKeyedSerializer } from './keyedSerializer';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

describe('the balance a write answers with', () => {
  let db: TestSchema;
  let redis: Redis;
  let eventStore: EventStore;
  let ledger: LedgerService;
  let service: BalanceService;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'balance_service' });
    redis = new Redis(stackConfig.redisUrl);
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    await catalog.createProduct(creditProductFromDto({ id: 'api', name: 'API calls', description: '', bundles: [], consumption: [], lowBalanceThreshold: null }));
    ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    service = createBalanceService({
      ledger,
      readModel: createBalanceReadModel({ redis, keyPrefix: uniqueName('balance_service') }),
      eventStore,
      balanceRegistry,
      balanceWrites: createKeyedSerializer({ maxPending: 10 }),
      consistency: { timeoutMs: 1000, pollIntervalMs: 10 },
      logger,
    });
  });

  afterAll(async () => {
    redis?.disconnect();
    await eventStore?.close();
    await db?.drop();
  });

  it('is, for a settings change that changed nothing, the state it was decided on at that state’s position, whatever was appended since', async () => {
    const opened = await ledger.openBalance({ customerId: uniqueName('acme'), productId: 'api', name: 'Main', startingBalance: parseCredits('10') });
    const balanceId = opened.balance.balanceId;
    const [decidedOn] = await eventStore.readStream(balanceStreamId(balanceId), { direction: 'backwards', maxCount: 1 });
    // Another writer (the metering consumer, another API process) appends after the decision.
    const { result, balance } = await service.run(balanceId, async () => {
      const unchanged = await ledger.changeSettings(balanceId, { name: 'Main' });
      await ledger.topUp(balanceId, { credits: parseCredits('5'), reason: null });
      return unchanged;
    });
    expect(result.events).toHaveLength(0);
    expect(balance).toMatchObject({ balance: '10', position: decidedOn!.position.toString() });
    const [appended] = await eventStore.readStream(balanceStreamId(balanceId), { direction: 'backwards', maxCount: 1 });
    expect(appended!.position).toBeGreaterThan(decidedOn!.position);
  });
});
