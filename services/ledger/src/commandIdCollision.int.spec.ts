import { createPostgresCatalogStore } from '@tally/catalog';
import { MICROS_PER_CREDIT } from '@tally/domain';
import { createPostgresEventStore } from '@tally/event-store';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { commandIds } from './deterministicId';
import { CommandIdCollisionError } from './ledgerErrors';
import { createLedgerService } from './ledgerService';
import { createPostgresBalanceRegistry } from './postgresBalanceRegistry';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

describe('a command id found in another balance stream', () => {
  let db: TestSchema;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'command_collision' });
  });

  afterAll(async () => {
    await db.drop();
  });

  it('is an error, never "already done"', async () => {
    const eventStore = createPostgresEventStore({ pool: db.pool, logger });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }), logger });
    await catalog.createProduct({ id: 'p', name: 'p', description: '', consumption: [], lowBalanceThreshold: null, bundles: [] });
    const { balance } = await ledger.openBalance({ customerId: 'alice', productId: 'p', startingBalance: 0n });
    const { balance: other } = await ledger.openBalance({ customerId: 'bob', productId: 'p', startingBalance: 0n });
    // Two balances deriving one command id, as ambiguous ids did before they were encoded: the
    // grant's events are stored in bob's stream first.
    const grant = { subscriptionId: 's', planId: 'plan', period: 0, periodStart: '2026-01-01T00:00:00.000Z', periodEnd: '2026-02-01T00:00:00.000Z' };
    await ledger.grant(other.balanceId, { ...grant, credits: 5n * MICROS_PER_CREDIT, productId: 'p' });
    const error = await ledger.grant(balance.balanceId, { ...grant, credits: 5n * MICROS_PER_CREDIT, productId: 'p' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CommandIdCollisionError);
    expect(error).toMatchObject({ code: 'command_id_collision', retriable: false });
    expect((error as Error).message).toContain(commandIds.grant('s', 'p', 0));
    expect((await ledger.getBalance(balance.balanceId)).balance.balance).toBe(0n);
    await eventStore.close();
  });
});
