import { balanceStreamId, MICROS_PER_CREDIT } from '@tally/domain';
import { waitFor } from '@tally/test-support';
import { fromRecordedEvent } from '@tally/ledger';
import { HOLD_ID_PROPERTY } from './usageCommands';
import { createMeteringTestKit, type MeteringTestKit } from './meteringTestKit.spec';

jest.setTimeout(180_000);

/** Issue 15: a usage event that names a hold is charged as usual and frees the hold in the same append. */
describe('usage that settles a hold', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it('charges the usage and frees the hold it names, once, whatever is redelivered', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'render', name: 'Render', consumption: [{ event: 'frame', credits: '2.5' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('alice', 'render', '10');
    const hold = await kit.ledger.placeHold(balanceId, { credits: 4n * MICROS_PER_CREDIT, expires: { inSeconds: 3600 }, reference: 'frame 1' }, { idempotencyKey: 'job-1' });
    const record = { id: 'f1', customerId: 'alice', event: 'frame', timestamp: Date.now(), properties: { [HOLD_ID_PROPERTY]: hold.holdId } };
    // The same usage twice (a redelivery): charged and settled once.
    await kit.produce([
      { key: 'alice', value: kit.avro(record) },
      { key: 'alice', value: kit.json(record) },
    ]);
    const consumer = await kit.startConsumer();
    await waitFor(() => consumer.counters().consumed >= 2, { description: 'both deliveries consumed', timeoutMs: 90_000 });
    await consumer.stop();
    const { balance } = await kit.ledger.getBalance(balanceId);
    expect(balance).toMatchObject({ balance: 7_500_000n, held: 0n, holds: {} });
    const events = await kit.eventStore.readStream(balanceStreamId(balanceId));
    const last = events.slice(-2);
    expect(last.map((event) => event.type)).toEqual(['CreditConsumed', 'HoldReleased']);
    // One decision: the same command caused both (a charge's causation is derived, not stored).
    expect(last[1]!.metadata.causationId).toBe(fromRecordedEvent(last[0]!).metadata.causationId);
    expect(last[1]!.data).toMatchObject({ holdId: hold.holdId, usageEventId: 'f1', credits: '4', heldAfter: '0', balanceAfter: '7.5' });
  });

  it('frees the hold named by usage that costs nothing (quantity 0), once, whatever is redelivered', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'render', name: 'Render', consumption: [{ event: 'frame', credits: '2.5', perUnitOf: 'frames' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('alice', 'render', '10');
    const hold = await kit.ledger.placeHold(balanceId, { credits: 4n * MICROS_PER_CREDIT, expires: { inSeconds: 3600 }, reference: 'job 0' }, { idempotencyKey: 'job-0' });
    expect((await kit.ledger.getBalance(balanceId)).balance).toMatchObject({ held: 4n * MICROS_PER_CREDIT });
    const record = { id: 'f0', customerId: 'alice', event: 'frame', timestamp: Date.now(), properties: { frames: 0, [HOLD_ID_PROPERTY]: hold.holdId } };
    await kit.produce([
      { key: 'alice', value: kit.avro(record) },
      { key: 'alice', value: kit.json(record) },
    ]);
    const consumer = await kit.startConsumer();
    await waitFor(() => consumer.counters().consumed >= 2, { description: 'both deliveries consumed', timeoutMs: 90_000 });
    await consumer.stop();
    const { balance } = await kit.ledger.getBalance(balanceId);
    // Available is whole again: nothing charged, nothing held.
    expect(balance).toMatchObject({ balance: 10n * MICROS_PER_CREDIT, held: 0n, holds: {} });
    const events = await kit.eventStore.readStream(balanceStreamId(balanceId));
    expect(events.slice(-2).map((event) => event.type)).toEqual(['CreditsHeld', 'HoldReleased']);
    expect(events.at(-1)!.data).toMatchObject({ holdId: hold.holdId, usageEventId: 'f0', credits: '4', heldAfter: '0', balanceAfter: '10' });
    // No CreditConsumed: not counted as matched; the cost is reported as ever, the redelivery as a duplicate.
    expect(consumer.counters()).toMatchObject({ matched: 0, appended: 1, skippedByReason: { zero_cost: 1, already_applied: 1 } });
  });
});
