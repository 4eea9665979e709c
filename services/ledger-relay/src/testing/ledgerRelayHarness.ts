/**
 * What the relay's integration tests share: a migrated test schema with the PostgreSQL event store
 * and the ledger service on it, topics and registry subjects of their own (removed afterwards),
 * a plain kafkajs consumer that decodes with the registry client, and a workload that produces
 * every ledger event type. In src/testing/, which the build leaves out.
 */
import { randomUUID } from 'node:crypto';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { createPostgresCatalogStore } from '@tally/catalog';
import { balanceStreamId, decide, formatCredits, HoldNotExpiredError, MICROS_PER_CREDIT, parseStoredCredits } from '@tally/domain';
import { createPostgresEventStore, type EventStore, type RecordedEvent } from '@tally/event-store';
import {
  commandIds,
  createLedgerService,
  createPostgresBalanceRegistry,
  expectedRevisionOf,
  loadBalance,
  toEventsToAppend,
  type LedgerService,
} from '@tally/ledger';
import {
  createTestKafka,
  createTestRegistry,
  createTestSchema,
  createTestTopic,
  deleteTopics,
  stackConfig,
  uniqueName,
  waitFor,
  type TestSchema,
} from '@tally/test-support';
import type { Admin, IHeaders, Kafka } from 'kafkajs';
import pino, { type Logger } from 'pino';
import { createLedgerRelay, type LedgerRelay, type LedgerRelayOptions } from '../ledgerRelay';
import { isLedgerEvent, type LedgerEventRecord } from '../ledgerEventRecord';

export const testLogger: Logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

export interface ConsumedMessage {
  readonly partition: number;
  readonly key: string;
  readonly headers: Record<string, string>;
  /** The schema id of the Confluent frame (bytes 1–4). */
  readonly schemaId: number;
  readonly value: LedgerEventRecord;
}

export interface TopicReader {
  readonly messages: ConsumedMessage[];
  stop(): Promise<void>;
}

export interface BalanceFixture {
  readonly balanceId: string;
  readonly customerId: string;
  readonly productId: string;
}

export interface LedgerRelayHarness {
  readonly store: EventStore;
  readonly db: TestSchema;
  readonly ledger: LedgerService;
  readonly registry: SchemaRegistry;
  readonly admin: Admin;
  /** A topic of the test's own with `partitions` partitions; it and its subject go in close(). */
  createTopic(partitions?: number): Promise<string>;
  /** A relay stopped in close(), if the test has not stopped it. */
  createRelay(topic: string, options?: Partial<LedgerRelayOptions>): LedgerRelay;
  /** Reads the topic from the beginning with a group of its own, decoding every value. */
  consume(topic: string): Promise<TopicReader>;
  /** Two customers, three balances: the first customer has one of each product. */
  openBalances(): Promise<BalanceFixture[]>;
  /**
   * One round per balance of: a purchase, a grant, holds (captured, released, expired), usage, a
   * manual deduction, a settings change; the usage and deductions take balances below their
   * threshold and past zero.
   */
  driveRound(balances: readonly BalanceFixture[], round: number): Promise<void>;
  /** Every ledger event in the store, in position order. */
  storedLedgerEvents(): Promise<RecordedEvent[]>;
  close(): Promise<void>;
}

const credits = (n: number | string): bigint => BigInt(n) * MICROS_PER_CREDIT;

export async function createLedgerRelayHarness(prefix: string): Promise<LedgerRelayHarness> {
  const db = await createTestSchema({ prefix });
  const store = createPostgresEventStore({ pool: db.pool, logger: testLogger });
  const catalog = createPostgresCatalogStore({ pool: db.pool, logger: testLogger });
  const ledger = createLedgerService({ eventStore: store, catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }), logger: testLogger });
  const registry = createTestRegistry();
  const kafka: Kafka = createTestKafka(uniqueName(prefix));
  const admin: Admin = kafka.admin();
  await admin.connect();

  const topics: string[] = [];
  const relays: LedgerRelay[] = [];
  const readers: TopicReader[] = [];

  for (const [id, threshold] of [
    ['api-credits', '10'],
    ['storage-credits', null],
  ] as const) {
    await catalog.createProduct({
      id,
      name: id,
      description: '',
      consumption: [],
      lowBalanceThreshold: threshold === null ? null : credits(threshold),
      bundles: [{ id: 'bundle-100', credits: credits(100), price: { amount: '9.99', currency: 'EUR' }, purchaseOption: true }],
    });
  }

  /** Usage as the metering consumer writes it: decided on the loaded state, ids derived from the usage event. */
  async function consumeUsage(balance: BalanceFixture, amount: bigint): Promise<void> {
    const usageId = randomUUID();
    const loaded = await loadBalance(store, balance.balanceId);
    const at = new Date().toISOString();
    const usage = { eventId: usageId, event: 'api_call', timestamp: at, quantity: '1' };
    const events = decide({ type: 'ConsumeUsage', credits: amount, usage, at }, loaded.state);
    await store.appendToStream(
      balanceStreamId(balance.balanceId),
      toEventsToAppend(events, balance, commandIds.usage(usageId, balance.balanceId)),
      { expectedRevision: expectedRevisionOf(loaded.revision) },
    );
  }

  return {
    store,
    db,
    ledger,
    registry,
    admin,

    async createTopic(partitions = 3) {
      const topic = await createTestTopic(admin, { prefix: 'ledger_relay_test', partitions });
      topics.push(topic);
      return topic;
    },

    createRelay(topic, options = {}) {
      const relay = createLedgerRelay({
        eventStore: store,
        pool: db.pool,
        checkpointName: `relay-${topic}`,
        kafka: { brokers: stackConfig.kafkaBrokers, clientId: uniqueName('ledger_relay') },
        topic,
        registryUrl: stackConfig.schemaRegistryUrl,
        logger: testLogger,
        // Small batches, so that a few hundred events take many sends and checkpoints.
        batchSize: 7,
        lagRefreshMs: 200,
        retry: { initialDelayMs: 100, maxDelayMs: 1_000 },
        ...options,
      });
      relays.push(relay);
      return relay;
    },

    async consume(topic) {
      const consumer = kafka.consumer({ groupId: uniqueName('ledger_relay_reader') });
      const messages: ConsumedMessage[] = [];
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ partition, message }) => {
          const value = message.value!;
          messages.push({
            partition,
            key: message.key!.toString(),
            headers: headersOf(message.headers),
            schemaId: value.readInt32BE(1),
            value: (await registry.decode(value)) as LedgerEventRecord,
          });
        },
      });
      const reader = { messages, stop: () => consumer.disconnect() };
      readers.push(reader);
      return reader;
    },

    async openBalances() {
      const customers = [uniqueName('customer_a'), uniqueName('customer_b')];
      const opened: BalanceFixture[] = [];
      for (const [customerId, productId] of [
        [customers[0]!, 'api-credits'],
        [customers[0]!, 'storage-credits'],
        [customers[1]!, 'api-credits'],
      ] as const) {
        const { balance } = await ledger.openBalance({ customerId, productId, startingBalance: credits(20) });
        opened.push({ balanceId: balance.balanceId, customerId, productId });
      }
      return opened;
    },

    async driveRound(balances, round) {
      for (const balance of balances) {
        await ledger.purchase(balance.balanceId, {
          bundleId: 'bundle-100',
          quantity: 1 + (round % 3),
          unitPrice: '9.99',
          totalPrice: ['9.99', '19.98', '29.97'][round % 3]!,
          currency: 'EUR',
          credits: credits(100 * (1 + (round % 3))),
        }, { actor: { kind: 'portal' } });
        await ledger.grant(balance.balanceId, {
          subscriptionId: `sub-${balance.balanceId}`,
          planId: 'pro',
          period: round,
          periodStart: new Date(Date.UTC(2026, round, 1)).toISOString(),
          periodEnd: new Date(Date.UTC(2026, round + 1, 1)).toISOString(),
          credits: credits(50),
          productId: balance.productId,
        });
        // Holds, each freed one way: captured in part, released, and expired (a millisecond after).
        const hold = (key: string, inSeconds: number) =>
          ledger.placeHold(balance.balanceId, { credits: credits(2), expires: { inSeconds }, reference: key }, { idempotencyKey: `${key}-${round}` });
        await ledger.captureHold((await hold('capture', 3600)).holdId, { credits: credits(1), reason: null });
        await ledger.releaseHold((await hold('release', 3600)).holdId, { reason: 'cancelled' });
        const expiring = await hold('expire', 0.001);
        await waitFor(
          () =>
            ledger.expireHold(expiring.holdId).then(
              () => true,
              (error: unknown) => {
                if (error instanceof HoldNotExpiredError) return false;
                throw error;
              },
            ),
          { description: 'the hold to be past its expiry', intervalMs: 5 },
        );
        // Usage and a deduction that take the balance from above the threshold to below zero,
        // so LowBalanceWarned and CreditBalanceDepleted happen every round.
        const { balance: state } = await ledger.getBalance(balance.balanceId);
        await consumeUsage(balance, state.balance - credits(5));
        await consumeUsage(balance, credits(3));
        const correction = await ledger.deduct(balance.balanceId, { credits: credits(4), reason: `correction ${round}` });
        // And a refund of part of it: a top-up naming its charge, which the Avro record carries.
        await ledger.refund(balance.balanceId, { entryId: correction.events[0]!.eventId, credits: credits(1), reason: 'partly wrong' });
        await ledger.changeSettings(balance.balanceId, { name: `balance ${round}` });
        // Back above zero for the next round.
        await ledger.topUp(balance.balanceId, { credits: credits(10), reason: 'goodwill' }, { actor: { kind: 'key', keyId: '0123456789ab', keyName: 'ops' } });
      }
    },

    async storedLedgerEvents() {
      return (await store.readAll()).filter(isLedgerEvent);
    },

    async close() {
      await Promise.allSettled(relays.map((relay) => relay.stop()));
      await Promise.allSettled(readers.map((reader) => reader.stop()));
      await deleteTopics(admin, topics).catch((error: unknown) => testLogger.warn({ err: error }, 'deleting test topics failed'));
      for (const topic of topics) await deleteSubject(`${topic}-value`);
      await admin.disconnect();
      await store.close();
      await db.drop();
    },
  };
}

/** Soft, then hard delete: Apicurio's Confluent API, like Confluent's, keeps soft-deleted subjects. */
async function deleteSubject(subject: string): Promise<void> {
  const url = `${stackConfig.schemaRegistryUrl}/subjects/${encodeURIComponent(subject)}`;
  await fetch(url, { method: 'DELETE' }).catch(() => undefined);
  await fetch(`${url}?permanent=true`, { method: 'DELETE' }).catch(() => undefined);
}

function headersOf(headers: IHeaders | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(headers ?? {}).map(([name, value]) => [name, String(value)]));
}

/** The first delivery of each event id, in delivery order: what a consumer that dedupes sees. */
export function firstDeliveries(messages: readonly ConsumedMessage[]): ConsumedMessage[] {
  const seen = new Set<string>();
  return messages.filter((message) => {
    if (seen.has(message.value.eventId)) return false;
    seen.add(message.value.eventId);
    return true;
  });
}

/**
 * Asserts that the deduplicated deliveries are exactly the stored ledger events, each balance's
 * in stream order (revisions 0, 1, 2, … as delivered), with the key and headers the contract
 * promises and every field equal to the stored event's.
 */
export function expectEveryEventInStreamOrder(messages: readonly ConsumedMessage[], stored: readonly RecordedEvent[]): void {
  const delivered = firstDeliveries(messages);
  expect(delivered.map((m) => m.value.eventId).sort()).toEqual(stored.map((e) => e.id).sort());

  const revisionsByBalance = new Map<string, number[]>();
  for (const { value } of delivered) {
    revisionsByBalance.set(value.balanceId, [...(revisionsByBalance.get(value.balanceId) ?? []), value.streamRevision]);
  }
  for (const revisions of revisionsByBalance.values()) {
    expect(revisions).toEqual(revisions.map((_, index) => index));
  }

  const storedById = new Map(stored.map((event) => [event.id, event]));
  for (const message of messages) {
    const event = storedById.get(message.value.eventId)!;
    const metadata = event.metadata as { balanceId: string; customerId: string; productId: string; actor?: { kind: string; keyId?: string; keyName?: string | null } };
    const { occurredAt, ...data } = event.data as Record<string, unknown>;
    // CreditBalanceOpened repeats the envelope's ids in its stored payload; the Avro payload does
    // not. The figures after the event (balanceAfter, heldAfter) travel in the envelope for hold
    // events; top-ups and consumption keep balanceAfter in the payload as before holds.
    const holdEvent = ['CreditsHeld', 'HoldCaptured', 'HoldReleased', 'HoldExpired'].includes(event.type);
    const left = ['balanceId', 'customerId', 'productId', 'heldAfter', ...(holdEvent ? ['balanceAfter'] : [])];
    const payload: Record<string, unknown> = Object.fromEntries(Object.entries(data).filter(([name]) => !left.includes(name)));
    if (event.type === 'CreditBalanceOpened' || event.type === 'CreditBalanceSettingsChanged') payload.overdraftLimit ??= '0';
    // A top-up that is no refund stores no refund; its Avro record says null.
    if (event.type === 'CreditToppedUp') payload.refund ??= null;
    const balanceAfter = data.balanceAfter as string | undefined;
    const heldAfter = balanceAfter === undefined ? undefined : ((data.heldAfter as string | undefined) ?? '0');
    expect(message.key).toBe(metadata.customerId);
    expect(message.headers).toEqual({ 'tally.event-type': event.type, 'tally.event-id': event.id });
    expect(plain(message.value)).toEqual({
      eventId: event.id,
      type: event.type,
      balanceId: metadata.balanceId,
      customerId: metadata.customerId,
      productId: metadata.productId,
      streamRevision: Number(event.revision),
      globalPosition: Number(event.position),
      occurredAt: Date.parse(occurredAt as string),
      recordedAt: event.recordedAt.getTime(),
      payload: { [`io.tally.ledger.${event.type}`]: payload },
      balance: balanceAfter ?? null,
      held: heldAfter ?? null,
      available: balanceAfter === undefined ? null : formatCredits(parseStoredCredits(balanceAfter) - parseStoredCredits(heldAfter!)),
      actor: metadata.actor === undefined ? null : { kind: metadata.actor.kind, keyId: metadata.actor.keyId ?? null, keyName: metadata.actor.keyName ?? null },
    });
  }
}

/** avsc decodes records into class instances; comparing their JSON form compares the data only. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}
