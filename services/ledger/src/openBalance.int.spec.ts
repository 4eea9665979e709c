import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { InvalidAmountError, MICROS_PER_CREDIT, ValidationError } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { createLedgerService, type LedgerService, type OpenBalanceRequest } from './ledgerService';
import { createPostgresBalanceRegistry } from './postgresBalanceRegistry';
import type { BalanceRegistry } from './balanceRegistry';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/**
 * An opening refused (400) must leave nothing registered: a balance registered without its
 * opening is one the metering consumer waits for (balanceOpenWaitMs) and then dead-letters its
 * customer's usage against, and one the API lists without a stream.
 */
describe('opening a balance', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let catalog: CatalogStore;
  let registry: BalanceRegistry;
  let ledger: LedgerService;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'open_balance' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    await catalog.createProduct({ id: 'api', name: 'API', description: '', consumption: [], lowBalanceThreshold: null, bundles: [] });
    registry = createPostgresBalanceRegistry({ pool: db.pool });
    ledger = createLedgerService({ eventStore, catalog, balanceRegistry: registry, logger });
  });

  afterAll(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  const refused: Array<[string, Partial<OpenBalanceRequest>, typeof ValidationError]> = [
    ['a blank name', { name: '   ' }, ValidationError],
    ['a negative starting balance', { startingBalance: -1n }, InvalidAmountError],
    ['a negative warning limit', { lowBalanceThreshold: -MICROS_PER_CREDIT }, InvalidAmountError],
    ['a negative overdraft limit', { overdraftLimit: -MICROS_PER_CREDIT }, InvalidAmountError],
  ];

  it.each(refused)('refuses %s before registering anything, and the pair opens afterwards', async (_, fields, error) => {
    const customerId = `cus-${Math.random().toString(36).slice(2)}`;
    await expect(ledger.openBalance({ customerId, productId: 'api', startingBalance: 10n * MICROS_PER_CREDIT, ...fields })).rejects.toThrow(error);
    expect(await registry.listCustomerBalances(customerId)).toEqual([]);

    const { balance } = await ledger.openBalance({ customerId, productId: 'api', startingBalance: 10n * MICROS_PER_CREDIT });
    expect(balance).toMatchObject({ status: 'open', customerId, name: 'API', balance: 10n * MICROS_PER_CREDIT });
    expect(await registry.listCustomerBalances(customerId)).toEqual([expect.objectContaining({ id: balance.balanceId })]);
  });
});
