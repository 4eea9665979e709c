import { randomUUID } from 'node:crypto';
import { parseCredits } from '@tally/domain';
import { createLedgerRelay, type LedgerEventRecord, type LedgerRelay } from '@tally/ledger-relay';
import {
  createTestKafka,
  createTestRegistry,
  createTestTopic,
  deleteTopics,
  stackConfig,
  uniqueName,
  waitFor,
} from '@tally/test-support';
import type { Admin, Consumer } from 'kafkajs';
import { periodStart } from './billingPeriod';
import { createSubscriptionsHarness, SubscriptionsHarness } from './testing/subscriptionsHarness';

jest.setTimeout(120_000);

const START = '2024-01-31T09:00:00.000Z';

/** The topped-up payload as the registry client decodes it: Avro's JSON form of the union branch. */
interface ToppedUpRecord {
  source: string;
  credits: string;
  purchase: { bundleId: string; quantity: number; unitPrice: string; totalPrice: string; currency: string } | null;
  grant: { subscriptionId: string; planId: string; period: number; periodStart: string; periodEnd: string } | null;
}

function toppedUp(record: LedgerEventRecord): ToppedUpRecord | undefined {
  return (record.payload as Record<string, unknown>)['io.tally.ledger.CreditToppedUp'] as ToppedUpRecord | undefined;
}

/** Downstream billing's view: grants and purchases arrive on the credit-ledger topic through the relay. */
describe('grants and purchases on the ledger topic', () => {
  let h: SubscriptionsHarness;
  let admin: Admin;
  let consumer: Consumer;
  let relay: LedgerRelay;
  let topic: string;
  const received = new Map<string, LedgerEventRecord>();

  beforeAll(async () => {
    h = await createSubscriptionsHarness('subs_topic', START);
    const kafka = createTestKafka(uniqueName('subs_topic'));
    admin = kafka.admin();
    await admin.connect();
    topic = await createTestTopic(admin, { prefix: 'subs_ledger', partitions: 2 });
    relay = createLedgerRelay({
      eventStore: h.eventStore,
      pool: h.db.pool,
      checkpointName: `relay-${topic}`,
      kafka: { brokers: stackConfig.kafkaBrokers, clientId: uniqueName('subs_relay') },
      topic,
      registryUrl: stackConfig.schemaRegistryUrl,
      logger: h.logger,
      retry: { initialDelayMs: 100, maxDelayMs: 1_000 },
    });
    await relay.start();
    const registry = createTestRegistry();
    consumer = kafka.consumer({ groupId: uniqueName('subs_reader') });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const record = (await registry.decode(message.value!)) as LedgerEventRecord;
        // Delivery is at least once: a consumer keeps one copy per event id.
        received.set(record.eventId, record);
      },
    });
  });

  afterAll(async () => {
    await consumer?.disconnect();
    await relay?.stop();
    if (admin !== undefined) {
      await deleteTopics(admin, [topic]);
      await admin.disconnect();
    }
    await h?.close();
  });

  it('carries each grant with its subscription and period, and each purchase with its prices', async () => {
    const product = await h.createProduct({
      bundles: [{ id: 'pack', credits: parseCredits('500'), price: { amount: '12.50', currency: 'USD' }, purchaseOption: true }],
    });
    const plan = await h.service.createPlan({ name: 'Monthly', items: [{ productId: product.id, creditsPerPeriod: '100', period: 'month' }] });
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt: new Date(START) });
    h.clock.set(periodStart(new Date(START), 'month', 1));
    await h.newScheduler().runOnce();
    const balance = await h.balanceRegistry.findBalance(customerId, product.id);
    await h.purchases.purchase(balance!.id, { bundleId: 'pack', quantity: 2 });

    const onTopic = await waitFor(
      () => {
        const topUps = [...received.values()].filter((record) => record.customerId === customerId && toppedUp(record) !== undefined);
        return topUps.length === 3 ? topUps.map((record) => ({ record, payload: toppedUp(record)! })) : undefined;
      },
      { description: 'two grants and a purchase on the topic', timeoutMs: 60_000 },
    );

    const grants = onTopic.filter(({ payload }) => payload.source === 'grant');
    expect(grants.map(({ payload }) => [payload.grant?.subscriptionId, payload.grant?.period, payload.credits]).sort()).toEqual([
      [subscription.id, 0, '100'],
      [subscription.id, 1, '100'],
    ]);
    expect(grants.every(({ record }) => record.balanceId === balance!.id && record.productId === product.id)).toBe(true);
    const purchase = onTopic.find(({ payload }) => payload.source === 'purchase');
    expect(purchase?.payload).toMatchObject({
      credits: '1000',
      purchase: { bundleId: 'pack', quantity: 2, unitPrice: '12.50', totalPrice: '25.00', currency: 'USD' },
    });
  });
});
