import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { MICROS_PER_CREDIT } from '@tally/domain';
import { createPostgresEventStore } from '@tally/event-store';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { commandIds, ledgerEventId } from './deterministicId';
import { CommandIdCollisionError } from './ledgerErrors';
import { createLedgerService } from './ledgerService';

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
    const ledger = createLedgerService({ eventStore, catalog, logger });
    await catalog.createProduct({ id: 'p', name: 'p', description: '', consumption: [], lowBalanceThreshold: null, bundles: [] });
    const { balance } = await ledger.openBalance({ customerId: 'alice', productId: 'p', startingBalance: 0n });
    // What an ambiguous id stored before the upgrade looks like: the grant's first event id,
    // already in some other balance's stream.
    const grant = { subscriptionId: 's', planId: 'plan', period: 0, periodStart: '2026-01-01T00:00:00.000Z', periodEnd: '2026-02-01T00:00:00.000Z' };
    await eventStore.appendToStream(`balance-${randomUUID()}`, [{ id: ledgerEventId(commandIds.grant('s', 'p', 0), 0), type: 'Other', data: {} }], {
      expectedRevision: 'no_stream',
    });
    await expect(ledger.grant(balance.balanceId, { ...grant, credits: 5n * MICROS_PER_CREDIT, productId: 'p' })).rejects.toBeInstanceOf(CommandIdCollisionError);
    expect((await ledger.getBalance(balance.balanceId)).balance.balance).toBe(0n);
    await eventStore.close();
  });
});
