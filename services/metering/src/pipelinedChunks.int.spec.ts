import type { EventStore } from '@tally/event-store';
import { meteredUsageMarker } from '@tally/ledger';
import { capturedLog, waitFor } from '@tally/test-support';
import { createMeteringTestKit, type MeteringTestKit, type UsageRecord } from './meteringTestKit.spec';

jest.setTimeout(180_000);

const T0 = Date.UTC(2026, 2, 1, 12);
const usage = (id: string): UsageRecord => ({ id, customerId: 'alice', event: 'api_call', timestamp: T0 });

/**
 * Issue 11 §3: within a partition, the next chunk is decoded, priced and its markers read while
 * the chunk before is appended. A usage id in two consecutive chunks is then read as unmetered
 * for the second (its marker is not recorded yet): the second chunk's append must collide on the
 * marker and redecide, so it is charged once; and offsets are handed over chunk by chunk, in order, and
 * committed (off the fetch cycle) never backwards.
 */
describe('pipelined chunks of one partition', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it('charges a usage id in two consecutive chunks once and commits their offsets in order', async () => {
    kit = await createMeteringTestKit({ partitions: 1 });
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('alice', 'api', '100');

    // batchSize 2: chunks [u1 u2] [u2 u3] [u3 u4]; u2 and u3 each straddle two chunks.
    const ids = ['u1', 'u2', 'u2', 'u3', 'u3', 'u4'];
    // One send: one record batch, so kafkajs hands the six messages over as one batch of three chunks.
    await kit.produce(ids.map((id) => ({ key: 'alice', value: kit.avro(usage(id)) })));

    // The real event store, with the race forced instead of hoped for: the first chunk's append
    // (the one recording u2's marker) waits until u2's marker has been read a second time, i.e.
    // by the next chunk's read ahead, so that read cannot have seen the first chunk's marker.
    const u2 = meteredUsageMarker('alice', 'u2');
    let u2Reads = 0;
    let held = false;
    const eventStore = new Proxy(kit.eventStore, {
      get(target, property, receiver) {
        if (property === 'readAppendTraces') {
          return async (...args: Parameters<EventStore['readAppendTraces']>) => {
            const read = await target.readAppendTraces(...args);
            if (args[0].includes(u2)) u2Reads += 1;
            return read;
          };
        }
        if (property === 'appendMany') {
          return async (...args: Parameters<EventStore['appendMany']>) => {
            if (!held && args[1]?.markers?.includes(u2) === true) {
              held = true;
              await waitFor(() => u2Reads >= 2, { description: "the next chunk's read of u2's marker", timeoutMs: 30_000 });
            }
            return target.appendMany(...args);
          };
        }
        return Reflect.get(target, property, receiver) as unknown;
      },
    });

    const { logger, lines } = capturedLog('debug');
    const consumer = await kit.startConsumer({ eventStore, logger, batchSize: 2 });
    await waitFor(() => consumer.counters().consumed >= ids.length, { description: `${ids.length} messages consumed`, timeoutMs: 90_000 });

    // Charged once each: u1..u4, 1 credit apiece, whichever chunk met them first.
    expect(await kit.balanceOf(balanceId)).toBe('96');
    const charged = (await kit.streamOf(balanceId))
      .filter((event) => event.type === 'CreditConsumed')
      .map((event) => (event.data as { usage: { eventId: string } }).usage.eventId);
    expect(charged).toEqual(['u1', 'u2', 'u3', 'u4']);
    // The second chunk's read ahead missed u2's marker: its append collided and it redecided.
    expect(held).toBe(true);
    expect(consumer.counters()).toMatchObject({ matched: 4, skippedByReason: { already_applied: 2 } });
    expect(consumer.counters().conflicts).toBeGreaterThanOrEqual(1);

    // Chunks metered in order, each handing over its offsets only after its own appends.
    const chunks = lines
      .map((line) => JSON.parse(line) as { msg?: string; firstOffset?: string; lastOffset?: string })
      .filter((line) => line.msg === 'usage batch metered')
      .map(({ firstOffset, lastOffset }) => [Number(firstOffset), Number(lastOffset)]);
    expect(chunks).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    // The committer commits them off the fetch cycle, never backwards, ending past the last chunk.
    await waitFor(async () => (await kit.admin.fetchOffsets({ groupId: kit.groupId, topics: [kit.topic] }))[0]!.partitions[0]!.offset === '6', {
      description: 'offset 6 committed',
      timeoutMs: 10_000,
    });
    const commits = lines
      .map((line) => JSON.parse(line) as { msg?: string; partitions?: { partition: number; offset: string }[] })
      .filter((line) => line.msg === 'offsets committed')
      .map(({ partitions }) => Number(partitions!.find(({ partition }) => partition === 0)!.offset));
    expect(commits.length).toBeGreaterThanOrEqual(1);
    expect(commits).toEqual([...commits].sort((a, b) => a - b));
    expect(commits.at(-1)).toBe(6);
  });
  it('keeps its group membership through one batch of short chunks that outlasts the session timeout', async () => {
    kit = await createMeteringTestKit({ partitions: 1 });
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('alice', 'api', '100');
    // One send: one batch of 24 chunks of one message, each appended in 400 ms, under the second
    // after which a step heartbeats on its own: some 10 s of chunks against a 6 s session. (Each
    // chunk's offset commit refreshes the session on the broker too; without those commits, a
    // member that did not heartbeat between chunks was evicted here and joined twice.)
    const ids = Array.from({ length: 24 }, (_, index) => `s${index}`);
    await kit.produce(ids.map((id) => ({ key: 'alice', value: kit.avro(usage(id)) })));
    const eventStore = new Proxy(kit.eventStore, {
      get(target, property, receiver) {
        if (property === 'appendMany') {
          return async (...args: Parameters<EventStore['appendMany']>) => {
            await new Promise((resolve) => setTimeout(resolve, 400));
            return target.appendMany(...args);
          };
        }
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    let joins = 0;
    const consumer = await kit.startConsumer({
      eventStore,
      batchSize: 1,
      sessionTimeoutMs: 6000,
      metrics: { batchProcessed: () => undefined, groupLagRead: () => undefined, partitionsAssigned: () => void (joins += 1) },
    });
    await waitFor(() => consumer.counters().consumed >= ids.length, { description: `${ids.length} messages consumed`, timeoutMs: 90_000 });

    expect(await kit.balanceOf(balanceId)).toBe('76');
    // Never taken for dead: joined once, and nothing delivered twice.
    expect(joins).toBe(1);
    expect(consumer.counters()).toMatchObject({ consumed: ids.length, matched: ids.length, skipped: 0 });
  });
});
