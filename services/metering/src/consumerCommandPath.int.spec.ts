import { balanceStreamId, formatCredits } from '@tally/domain';
import { countingEventStore } from '@tally/test-support';
import { createBalanceCommandPath, createBalanceStates, createLedgerService, createPostgresBalanceStateStore } from '@tally/ledger';
import { consumedAtLeast, createMeteringTestKit, usageRecord as usage, type MeteringTestKit } from './meteringTestKit.spec';
import type { UsageConsumer } from './usageConsumer';

jest.setTimeout(300_000);

const PAGED_ONLY = { refuse: { reads: ['readStreams'], because: 'whole streams are read in pages, never at once' } } as const;

/** A consumer metering thousands of events: a longer deadline than the kit's. */
const consumed = (consumer: UsageConsumer, count: number): Promise<void> => consumedAtLeast(consumer, count, 240_000);

describe('the metering consumer on the one command path', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it('meets an API write with a conflict and then reads only the tail after the state it holds', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('alice', 'api', '100');
    const counted = countingEventStore(kit.eventStore, PAGED_ONLY);
    const consumer = await kit.startConsumer({ eventStore: counted.store });

    await kit.produce(['a1', 'a2', 'a3', 'a4'].map((id) => ({ key: 'alice', value: kit.json(usage(id, 'alice')) })));
    await consumed(consumer, 4);
    const held = (await kit.streamOf(balanceId)).length - 1;

    // The API writes behind the consumer's back: the state it holds is one event short now.
    await kit.ledger.topUp(balanceId, { credits: 10_000_000n, reason: 'refill' });
    const readsBefore = counted.reads.length;
    const pagedBefore = counted.pagedReads();
    await kit.produce(['b1', 'b2'].map((id) => ({ key: 'alice', value: kit.json(usage(id, 'alice')) })));
    await consumed(consumer, 6);

    expect(await kit.balanceOf(balanceId)).toBe(String(100 - 6 + 10));
    expect(consumer.counters().conflicts).toBeGreaterThanOrEqual(1);
    // After the conflict: the tail after the revision it held (the top-up), never the stream again.
    const after = counted.reads.slice(readsBefore);
    expect(after.length).toBeGreaterThanOrEqual(1);
    expect(after.every((read) => read.streamId === balanceStreamId(balanceId) && read.fromRevision > BigInt(held))).toBe(true);
    expect(after.reduce((sum, read) => sum + read.events, 0)).toBe(1);
    expect(counted.pagedReads()).toBe(pagedBefore);
  });

  it('keeps a stored state as it grows a balance, so a fresh API process folds fewer than 10,000 events', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('bob', 'api', '1000000');
    const stateStore = createPostgresBalanceStateStore({ pool: kit.db.pool });
    // As the main job wires it: the consumer's own states, stored ones kept as a balance grows.
    const states = createBalanceStates({ eventStore: kit.eventStore, stateStore, logger: kit.logger, snapshotEveryWrite: false });
    const consumer = await kit.startConsumer({
      balanceWrites: { states, commands: createBalanceCommandPath({ eventStore: kit.eventStore, states, logger: kit.logger }) },
    });

    const total = 12_000;
    for (let start = 0; start < total; start += 1000) {
      await kit.produce(Array.from({ length: 1000 }, (_, i) => ({ key: 'bob', value: kit.json(usage(`u${start + i}`, 'bob')) })));
    }
    await consumed(consumer, total);

    // A new API process: no cache, the shared snapshot table, what it reads counted.
    const counted = countingEventStore(kit.eventStore, PAGED_ONLY);
    const api = createLedgerService({ eventStore: counted.store, catalog: kit.catalogStore, balanceRegistry: kit.registryStore, logger: kit.logger, stateStore });
    const result = await api.topUp(balanceId, { credits: 1_000_000n, reason: 'manual top-up' });

    expect(formatCredits(result.balance.balance)).toBe(String(1_000_000 - total + 1));
    expect(counted.eventsRead()).toBeLessThan(10_000);
    expect(counted.reads.every((read) => read.fromRevision >= 10_000n)).toBe(true);
  });
});
