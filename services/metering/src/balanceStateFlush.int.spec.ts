import { balanceStreamId } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { CONSUMER_KEEP_AFTER_LOAD_EVENTS, createPostgresBalancePages, createPostgresBalanceStateStore, createUsageBalanceWrites, keepBalanceStates } from '@tally/ledger';
import { countingEventStore, waitFor } from '@tally/test-support';
import { consumedAtLeast, createMeteringTestKit, usageRecord as usage, type MeteringTestKit } from './meteringTestKit.spec';
import type { UsageConsumer } from './usageConsumer';

jest.setTimeout(300_000);

const CUSTOMERS = ['ann', 'ben', 'cat'];

/** A consumer metering thousands of events: a longer deadline than the kit's. */
const consumed = (consumer: UsageConsumer, count: number): Promise<void> => consumedAtLeast(consumer, count, 240_000);

describe("the metering consumer's stored states, kept write-behind", () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  async function openBalances(): Promise<string[]> {
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const balances: string[] = [];
    for (const customer of CUSTOMERS) balances.push(await kit.openBalance(customer, 'api', '1000'));
    return balances;
  }

  /** As the main job wires the consumer: its own states over the PostgreSQL stored states. */
  function consumerWrites(eventStore: EventStore = kit.eventStore) {
    return createUsageBalanceWrites({ eventStore, stateStore: createPostgresBalanceStateStore({ pool: kit.db.pool }), logger: kit.logger });
  }

  async function meter(consumer: UsageConsumer, prefix: string, perCustomer: number, before: number): Promise<void> {
    await kit.produce(CUSTOMERS.flatMap((customer) => Array.from({ length: perCustomer }, (_, i) => ({ key: customer, value: kit.json(usage(`${prefix}-${customer}-${i}`, customer)) }))));
    await consumed(consumer, before + perCustomer * CUSTOMERS.length);
  }

  /** Whether every balance's latest stored state is at its stream's end. */
  async function storedAtEnd(balances: readonly string[]): Promise<boolean> {
    const stored = await createPostgresBalanceStateStore({ pool: kit.db.pool }).loadLatest(balances);
    for (const balanceId of balances) {
      const stream = await kit.streamOf(balanceId);
      if (stored.get(balanceId)?.revision !== stream.at(-1)!.revision) return false;
    }
    return true;
  }

  /** Events a fresh consumer's states (no cache) read to load these balances. */
  async function freshLoadReads(balances: readonly string[]): Promise<number> {
    const counted = countingEventStore(kit.eventStore);
    const fresh = consumerWrites(counted.store);
    const loaded = await fresh.states.loadMany(balances);
    expect([...loaded.values()].every((balance) => balance.state.status === 'open')).toBe(true);
    await fresh.states.close();
    return counted.eventsRead();
  }

  it('flushes them periodically, one replaceable row per balance, so a fresh consumer reads no history', async () => {
    kit = await createMeteringTestKit();
    const balances = await openBalances();
    const consumer = await kit.startConsumer({ balanceWrites: consumerWrites(), stateFlushIntervalMs: 100 });
    // CONSUMER_KEEP_AFTER_LOAD_EVENTS a balance, which makes it due for the periodic flush, and far
    // below snapshotAfterEvents: only the flush keeps them (the loads folded the two opening events).
    await meter(consumer, 'a', CONSUMER_KEEP_AFTER_LOAD_EVENTS, 0);
    await waitFor(() => storedAtEnd(balances), { description: 'stored states at the streams\u2019 ends', timeoutMs: 60_000 });
    expect(await freshLoadReads(balances)).toBe(0);

    await meter(consumer, 'b', CONSUMER_KEEP_AFTER_LOAD_EVENTS, CONSUMER_KEEP_AFTER_LOAD_EVENTS * CUSTOMERS.length);
    await waitFor(() => storedAtEnd(balances), { description: 'stored states at the streams\u2019 ends again', timeoutMs: 60_000 });
    expect(await freshLoadReads(balances)).toBe(0);
    // Flushed twice, yet one replaceable row per balance: the newer replaced the older.
    const { rows } = await kit.db.pool.query<{ stream_id: string; rows: string }>(
      'SELECT stream_id, count(*) AS rows FROM balance_snapshots WHERE replaceable GROUP BY stream_id ORDER BY stream_id',
    );
    expect(rows).toEqual(balances.map((balanceId) => ({ stream_id: balanceStreamId(balanceId), rows: '1' })).sort((a, b) => a.stream_id.localeCompare(b.stream_id)));

    // A few events more on every balance are not worth a row: once a later flush has kept the first
    // customer's balance (due again after more events), the others' stored states are still where they were.
    const stored = async () => createPostgresBalanceStateStore({ pool: kit.db.pool }).loadLatest(balances);
    const before = await stored();
    await meter(consumer, 'c', 5, 2 * CONSUMER_KEEP_AFTER_LOAD_EVENTS * CUSTOMERS.length);
    const first = CUSTOMERS[0]!;
    await kit.produce(Array.from({ length: CONSUMER_KEEP_AFTER_LOAD_EVENTS }, (_, i) => ({ key: first, value: kit.json(usage(`d-${first}-${i}`, first)) })));
    await consumed(consumer, (2 * CONSUMER_KEEP_AFTER_LOAD_EVENTS + 5) * CUSTOMERS.length + CONSUMER_KEEP_AFTER_LOAD_EVENTS);
    await waitFor(() => storedAtEnd([balances[0]!]), { description: 'the first customer’s stored state at its stream’s end', timeoutMs: 60_000 });
    const after = await stored();
    for (const balanceId of balances.slice(1)) {
      expect(after.get(balanceId)?.revision).toBe(before.get(balanceId)!.revision);
      expect((await kit.streamOf(balanceId)).at(-1)!.revision).toBe(before.get(balanceId)!.revision + 5n);
    }
  });

  it('flushes them at a graceful stop, long before the interval', async () => {
    kit = await createMeteringTestKit();
    const balances = await openBalances();
    const consumer = await kit.startConsumer({ balanceWrites: consumerWrites(), stateFlushIntervalMs: 3_600_000 });
    await meter(consumer, 'a', 20, 0);
    // Without the stop, a fresh consumer folds every event but the openings' (22 a balance).
    expect(await freshLoadReads(balances)).toBe(22 * CUSTOMERS.length);
    await consumer.stop();
    expect(await storedAtEnd(balances)).toBe(true);
    expect(await freshLoadReads(balances)).toBe(0);
  });

  it('gets them for a history written without them from keep-balance-states, idempotently and resumably', async () => {
    kit = await createMeteringTestKit();
    const balances = await openBalances();
    // History written past Tally's stored states (the kit's ledger keeps none): as after a bulk import.
    for (const balanceId of balances) for (let i = 0; i < 10; i += 1) await kit.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'import' });
    const perBalance = (await kit.streamOf(balances[0]!)).length;
    expect(await freshLoadReads(balances)).toBe(perBalance * balances.length);

    const options = {
      eventStore: kit.eventStore,
      stateStore: createPostgresBalanceStateStore({ pool: kit.db.pool }),
      pageBalanceIds: createPostgresBalancePages({ pool: kit.db.pool }),
      logger: kit.logger,
      pageSize: 2,
    };
    const sorted = [...balances].sort();
    // Interrupted after the first balance, resumed after it: every balance done once.
    const resumed = await keepBalanceStates({ ...options, after: sorted[0] });
    expect(resumed).toEqual({ balances: 2, kept: 2, last: sorted[2] });
    const whole = await keepBalanceStates(options);
    expect(whole).toEqual({ balances: 3, kept: 1, last: sorted[2] });
    expect(await keepBalanceStates(options)).toEqual({ balances: 3, kept: 0, last: sorted[2] });
    expect(await freshLoadReads(balances)).toBe(0);
    // A write after it (Tally's ledger here keeps none): a fresh load reads that one event, in the same batched read.
    await kit.ledger.topUp(balances[1]!, { credits: 1_000_000n, reason: 'after' });
    expect(await freshLoadReads(balances)).toBe(1);
    expect(await kit.balanceOf(balances[1]!)).toBe(String(1000 + 10 + 1));

    // And a fresh consumer meters on them reading only the tails.
    const counted = countingEventStore(kit.eventStore);
    const consumer = await kit.startConsumer({ eventStore: counted.store, balanceWrites: consumerWrites(counted.store) });
    await meter(consumer, 'c', 2, 0);
    // The one top-up after the stored states, nothing of the history.
    expect(counted.eventsRead()).toBe(1);
    expect(await kit.balanceOf(balances[0]!)).toBe(String(1000 + 10 - 2));
    expect(await kit.balanceOf(balances[1]!)).toBe(String(1000 + 10 + 1 - 2));
  });
});
