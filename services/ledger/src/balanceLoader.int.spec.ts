import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { MICROS_PER_CREDIT } from '@tally/domain';
import { createPostgresEventStore } from '@tally/event-store';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { loadBalance, loadBalances, NO_STREAM } from './balanceLoader';
import { createLedgerService } from './ledgerService';
import { createPostgresBalanceRegistry } from './postgresBalanceRegistry';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const credits = (n: number): bigint => BigInt(n) * MICROS_PER_CREDIT;

describe('loadBalances on PostgreSQL', () => {
  let db: TestSchema;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'balance_loader' });
  });

  afterAll(async () => {
    await db.drop();
  });

  it('folds streams longer than a page, page by page, to the states a whole-stream fold gives', async () => {
    const eventStore = createPostgresEventStore({ pool: db.pool, logger });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }), logger });
    await catalog.createProduct({ id: 'p', name: 'p', description: '', consumption: [], lowBalanceThreshold: credits(5), bundles: [] });

    // Streams of 2, 7 and 16 events (opened, starting top-up, then changes that cross the threshold and zero).
    const ids: string[] = [];
    for (const changes of [0, 5, 14]) {
      const { balance } = await ledger.openBalance({ customerId: `c_${randomUUID()}`, productId: 'p', startingBalance: credits(10) });
      for (let i = 0; i < changes; i += 1) {
        if (i % 3 === 2) await ledger.topUp(balance.balanceId, { credits: credits(4), reason: `top-up ${i}` });
        else await ledger.deduct(balance.balanceId, { credits: credits(3), reason: `deduction ${i}` });
      }
      ids.push(balance.balanceId);
    }
    const missing = randomUUID();

    const paged = await loadBalances(eventStore, [...ids, missing], { maxPageEvents: 3 });
    for (const balanceId of ids) expect(paged.get(balanceId)).toEqual(await loadBalance(eventStore, balanceId));
    expect(paged.get(ids[2]!)!.revision).toBeGreaterThan(3n);
    expect(paged.get(missing)).toEqual({ state: { status: 'unopened' }, revision: NO_STREAM });
    expect(await loadBalances(eventStore, [...ids, missing])).toEqual(paged);
    await eventStore.close();
  });
});
