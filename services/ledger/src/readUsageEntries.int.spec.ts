import { createPostgresCatalogStore } from '@tally/catalog';
import { balanceStreamId, MICROS_PER_CREDIT, type BalanceEvent } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { commandIds, ledgerEventId } from './deterministicId';
import { toEventsToAppend } from './ledgerEvents';
import { createLedgerService, type LedgerService } from './ledgerService';
import { createPostgresBalanceRegistry } from './postgresBalanceRegistry';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const AT = '2026-03-01T12:00:00.000Z';

describe("a usage event's entries and their refunds, read by their ids (PostgreSQL)", () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let ledger: LedgerService;
  /** The ledger's reads of the store by id. */
  let reads = 0;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'usage_entries' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    await catalog.createProduct({ id: 'p', name: 'p', description: '', consumption: [], lowBalanceThreshold: null, bundles: [] });
    const counted: EventStore = {
      ...eventStore,
      readAppendTraces: (markers, eventIds) => ((reads += 1), eventStore.readAppendTraces(markers, eventIds)),
      readEventsById: (eventIds) => ((reads += 1), eventStore.readEventsById(eventIds)),
    };
    ledger = createLedgerService({ eventStore: counted, catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }), logger });
  });

  afterAll(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  it("reads a charge's refund with its entries, and a charge its command wrote after another entry with one read more", async () => {
    const { balance } = await ledger.openBalance({ customerId: 'c-1', productId: 'p', startingBalance: 10n * MICROS_PER_CREDIT });
    const { balanceId } = balance;
    const context = { balanceId, customerId: 'c-1', productId: 'p' };
    const charge = (usageEventId: string, balanceAfter: bigint): BalanceEvent => ({
      type: 'CreditConsumed',
      credits: MICROS_PER_CREDIT,
      source: 'usage',
      reason: null,
      usage: { eventId: usageEventId, event: 'api_call', timestamp: AT, quantity: '1' },
      balanceAfter,
      heldAfter: 0n,
      occurredAt: AT,
    });
    // u-1 as the decider writes a usage: its charge first. u-2 as no decider here does, its
    // charge after a warning: an order the lookup does not rely on.
    await eventStore.appendMany([
      { streamId: balanceStreamId(balanceId), expectedRevision: 1n, events: toEventsToAppend([charge('u-1', 9n * MICROS_PER_CREDIT)], context, commandIds.usage('u-1', balanceId)) },
    ]);
    await eventStore.appendMany([
      {
        streamId: balanceStreamId(balanceId),
        expectedRevision: 2n,
        events: toEventsToAppend(
          [{ type: 'LowBalanceWarned', threshold: 9n * MICROS_PER_CREDIT, balance: 9n * MICROS_PER_CREDIT, occurredAt: AT }, charge('u-2', 8n * MICROS_PER_CREDIT)],
          context,
          commandIds.usage('u-2', balanceId),
        ),
      },
    ]);
    const first = ledgerEventId(commandIds.usage('u-1', balanceId), 0);
    const second = ledgerEventId(commandIds.usage('u-2', balanceId), 1);
    const refunds: string[] = [];
    for (const entryId of [first, second]) refunds.push((await ledger.refund(balanceId, { entryId, reason: null })).events[0]!.eventId);

    reads = 0;
    const [u1] = await ledger.readUsageEntries('c-1', ['u-1'], [balanceId]);
    expect(u1!.balances[0]!.refunds.get(first)).toBe(refunds[0]);
    expect(reads).toBe(1);

    reads = 0;
    const [u2] = await ledger.readUsageEntries('c-1', ['u-2'], [balanceId]);
    expect(u2!.balances[0]!.items.map(({ event }) => event.type)).toEqual(['LowBalanceWarned', 'CreditConsumed']);
    expect(u2!.balances[0]!.refunds.get(second)).toBe(refunds[1]);
    expect(reads).toBe(2);
  });
});
