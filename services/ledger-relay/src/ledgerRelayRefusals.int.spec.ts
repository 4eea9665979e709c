import { randomUUID } from 'node:crypto';
import { balanceStreamId } from '@tally/domain';
import { EventStoreStreamDeletedError, EventStoreUnavailableError, StreamRevisionMismatchError, type EventStore, type SubscribeToAllOptions } from '@tally/event-store';
import { createPostgresCheckpointStore } from '@tally/runtime';
import { capturedLog, uniqueName, waitFor } from '@tally/test-support';
import { ConfigResourceTypes } from 'kafkajs';
import { createLedgerRelayHarness, expectEveryEventInStreamOrder, type LedgerRelayHarness } from './testing/ledgerRelayHarness';

jest.setTimeout(180_000);

/** A relay's failure as its worker reports it (Worker.onFailure), once. */
function failureOf(relay: { onFailure(listener: (error: unknown) => void): void }): () => unknown {
  let failure: unknown;
  relay.onFailure((error) => (failure = error));
  return () => failure;
}

/**
 * What the broker or the stored events refuse: a batch over the topic's max.message.bytes is sent
 * in parts, and what cannot be sent at all (one record too large, one event that cannot be
 * encoded) fails the relay naming the event, instead of retrying it for ever at warn.
 */
describe('ledger relay, what the topic refuses', () => {
  let harness: LedgerRelayHarness;

  beforeAll(async () => {
    harness = await createLedgerRelayHarness('ledger_relay_refusals');
  });

  afterAll(async () => {
    await harness?.close();
  });

  const maxMessageBytes = (topic: string, bytes: number) =>
    harness.admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'max.message.bytes', value: String(bytes) }] }],
    });

  it("sends a batch larger than the topic's max.message.bytes in parts, every event in order, the checkpoint at the last", async () => {
    const topic = await harness.createTopic(1);
    // Each event fits; 500 of them in one send would not.
    await maxMessageBytes(topic, 6_000);
    const reader = await harness.consume(topic);
    const balances = await harness.openBalances();
    await harness.driveRound(balances, 0);
    await harness.driveRound(balances, 1);
    const stored = await harness.storedLedgerEvents();
    const { logger, lines } = capturedLog('warn');
    const relay = harness.createRelay(topic, { batchSize: 500, logger });
    const failure = failureOf(relay);
    await relay.start();

    await waitFor(() => relay.lag().events === 0 || failure() !== undefined, { description: 'the relay caught up', timeoutMs: 60_000 });
    expect(failure()).toBeUndefined();
    await waitFor(() => reader.messages.length >= stored.length, { description: `${stored.length} events on ${topic}`, timeoutMs: 30_000 });
    expectEveryEventInStreamOrder(reader.messages, stored);
    expect(lines.filter((line) => /MESSAGE_TOO_LARGE|larger than the max message size/i.test(line))).toEqual([]);
    expect(await createPostgresCheckpointStore(harness.db.pool).load(`relay-${topic}`)).toBe(stored[stored.length - 1]!.position);
    await relay.stop();
  });

  it('fails, at error level, naming the event, when the topic refuses a single record as too large', async () => {
    const topic = await harness.createTopic(1);
    // Below any one ledger event.
    await maxMessageBytes(topic, 200);
    await harness.driveRound(await harness.openBalances(), 0);
    const [first] = await harness.storedLedgerEvents();
    const { logger, lines } = capturedLog('error');
    const relay = harness.createRelay(topic, { checkpointName: uniqueName('too_large'), logger });
    const failure = failureOf(relay);
    await relay.start();

    await waitFor(() => failure() !== undefined, { description: 'the relay to fail', timeoutMs: 60_000 });
    expect(relay.state()).toBe('failed');
    const message = (failure() as Error).message;
    expect(message).toContain(first!.id);
    expect(message).toContain(`${first!.streamId}@${first!.revision}`);
    expect(message).toContain(`position ${first!.position}`);
    expect(lines.join('\n')).toContain(first!.id);
    await relay.stop();
  });
});

describe('ledger relay, a stored event it cannot encode', () => {
  let harness: LedgerRelayHarness;

  beforeAll(async () => {
    // A schema of its own: the poisoned event would stop every relay over this store.
    harness = await createLedgerRelayHarness('ledger_relay_poison');
  });

  afterAll(async () => {
    await harness?.close();
  });

  it('publishes what comes before it, then fails at error level naming it (id, stream@revision, position)', async () => {
    const topic = await harness.createTopic(1);
    const reader = await harness.consume(topic);
    const balances = await harness.openBalances();
    const [b] = balances;
    const stream = balanceStreamId(b!.balanceId);
    const events = await harness.store.readStream(stream);
    // Credits stored as a number, as a faulty writer or migration could leave them.
    const poisonId = randomUUID();
    const { position, nextExpectedRevision } = await harness.store.appendToStream(
      stream,
      [
        {
          id: poisonId,
          type: 'CreditToppedUp',
          data: { credits: 5, source: 'manual', reason: null, balanceAfter: '25', occurredAt: new Date().toISOString() },
          metadata: { balanceId: b!.balanceId, customerId: b!.customerId, productId: b!.productId },
        },
      ],
      { expectedRevision: events[events.length - 1]!.revision },
    );
    await harness.driveRound(balances.slice(1), 0);
    const { logger, lines } = capturedLog('error');
    const relay = harness.createRelay(topic, { batchSize: 500, logger });
    const failure = failureOf(relay);
    await relay.start();

    await waitFor(() => failure() !== undefined, { description: 'the relay to fail at the event', timeoutMs: 60_000 });
    expect(relay.state()).toBe('failed');
    const message = (failure() as Error).message;
    expect(message).toContain(poisonId);
    expect(message).toContain(`${stream}@${nextExpectedRevision}`);
    expect(message).toContain(`position ${position}`);
    expect(lines.join('\n')).toContain(poisonId);
    // Nothing after it was published, nor it; the checkpoint stays before it.
    expect(await createPostgresCheckpointStore(harness.db.pool).load(`relay-${topic}`)).toBeLessThan(position);
    await relay.stop();
    expect(reader.messages.map((m) => m.value.eventId)).not.toContain(poisonId);
  });
});

/**
 * A store whose every read of $all fails with `error`: its subscription reports each failed read
 * (onError) and tries again, as the stores' subscriptions do (startSubscription), and delivers
 * nothing. What the relay sees of an EventStoreDB store whose journal entry cannot be applied
 * (StreamRevisionMismatchError on every settle) or a stream deleted under it.
 */
function unreadable(store: EventStore, error: Error): { store: EventStore; reports: () => number } {
  let reports = 0;
  const subscribeToAll = (options: SubscribeToAllOptions) => {
    const report = () => {
      reports += 1;
      options.onError?.(error);
    };
    const timer = setInterval(report, 20);
    return { stop: async () => clearInterval(timer) };
  };
  return { store: { ...store, subscribeToAll }, reports: () => reports };
}

describe('ledger relay, an event store it cannot read', () => {
  let harness: LedgerRelayHarness;

  beforeAll(async () => {
    harness = await createLedgerRelayHarness('ledger_relay_unreadable');
  });

  afterAll(async () => {
    await harness?.close();
  });

  it.each([
    ['StreamRevisionMismatchError', new StreamRevisionMismatchError('creditBalance-b1', 3n, 5n)],
    ['EventStoreStreamDeletedError', new EventStoreStreamDeletedError('creditBalance-b2')],
  ])('fails at error level with a %s (not retriable) the store reports of its reads, instead of retrying for ever', async (_name, error) => {
    const topic = await harness.createTopic(1);
    const { store } = unreadable(harness.store, error);
    const { logger, lines } = capturedLog('error');
    const relay = harness.createRelay(topic, { eventStore: store, checkpointName: uniqueName('unreadable'), logger });
    const failure = failureOf(relay);
    await relay.start();

    await waitFor(() => failure() !== undefined, { description: 'the relay to fail', timeoutMs: 30_000 });
    expect(failure()).toBe(error);
    expect(relay.state()).toBe('failed');
    // One line at error level, naming the error's code.
    expect(lines.filter((line) => line.includes(`"code":"${error.code}"`))).toHaveLength(1);
    await relay.stop();
  });

  it('fails when the store cannot tell the head of its log as the relay starts working', async () => {
    const topic = await harness.createTopic(1);
    const error = new StreamRevisionMismatchError('creditBalance-b3', 3n, 5n);
    const store: EventStore = { ...harness.store, headPosition: () => Promise.reject(error) };
    const relay = harness.createRelay(topic, { eventStore: store, checkpointName: uniqueName('unreadable') });
    const failure = failureOf(relay);
    await relay.start();

    await waitFor(() => failure() !== undefined, { description: 'the relay to fail', timeoutMs: 30_000 });
    expect(failure()).toBe(error);
    expect(relay.state()).toBe('failed');
    await relay.stop();
  });

  it.each([
    ['a retriable store error', new EventStoreUnavailableError(new Error('connection refused'))],
    ['an error Tally does not name', new Error('something unforeseen')],
  ])('retries %s the store reports of its reads, and keeps running', async (_name, error) => {
    const topic = await harness.createTopic(1);
    const { store, reports } = unreadable(harness.store, error);
    const relay = harness.createRelay(topic, { eventStore: store, checkpointName: uniqueName('unreadable') });
    const failure = failureOf(relay);
    await relay.start();

    await waitFor(() => reports() >= 10 || failure() !== undefined, { description: 'ten failed reads reported', timeoutMs: 30_000 });
    expect(failure()).toBeUndefined();
    expect(relay.state()).not.toBe('failed');
    await relay.stop();
  });
});
