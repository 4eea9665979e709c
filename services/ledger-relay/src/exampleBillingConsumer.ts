import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { createKafka } from '@tally/kafka';
import { logLevel } from 'kafkajs';
import type { LedgerEventRecord } from './ledgerEventRecord';

/**
 * The example consumer of docs/ledger.md: what a billing service needs to read `credit-ledger`,
 * using only kafkajs (with the codecs of @tally/kafka, for a topic written compressed) and the registry client. It turns every purchase of credits into an
 * invoice-to-be. Run it with `node scripts/example-billing-consumer.js` after `npm run build`.
 */

/** A line to invoice: one purchase of credit bundles. */
export interface InvoiceToBe {
  /** The ledger event id: the idempotency key of the invoice line. */
  readonly eventId: string;
  readonly customerId: string;
  readonly balanceId: string;
  readonly productId: string;
  readonly bundleId: string;
  readonly quantity: number;
  readonly unitPrice: string;
  readonly totalPrice: string;
  readonly currency: string;
  readonly credits: string;
  readonly purchasedAt: Date;
}

/** The purchase a decoded ledger event records, if it is one (a CreditToppedUp with source purchase). */
export function invoiceToBeOf(event: LedgerEventRecord): InvoiceToBe | undefined {
  // The payload, a union of records, decodes to { "<full record name>": record }: Avro's JSON form.
  const { payload } = event;
  if (!('io.tally.ledger.CreditToppedUp' in payload)) return undefined;
  const toppedUp = payload['io.tally.ledger.CreditToppedUp'];
  if (toppedUp.source !== 'purchase' || toppedUp.purchase === null) return undefined;
  const { bundleId, quantity, unitPrice, totalPrice, currency } = toppedUp.purchase;
  return {
    eventId: event.eventId,
    customerId: event.customerId,
    balanceId: event.balanceId,
    productId: event.productId,
    bundleId,
    quantity,
    unitPrice,
    totalPrice,
    currency,
    credits: toppedUp.credits,
    purchasedAt: new Date(event.occurredAt),
  };
}

interface ExampleBillingConsumerOptions {
  readonly brokers: readonly string[];
  readonly registryUrl: string;
  readonly topic: string;
  /** Offsets are committed for this group, so a restart continues where it stopped. */
  readonly groupId: string;
  readonly onInvoice: (invoice: InvoiceToBe) => void | Promise<void>;
}

interface ExampleBillingConsumer {
  stop(): Promise<void>;
}

export async function startExampleBillingConsumer(options: ExampleBillingConsumerOptions): Promise<ExampleBillingConsumer> {
  const registry = new SchemaRegistry({ host: options.registryUrl });
  const kafka = createKafka({ clientId: options.groupId, brokers: [...options.brokers], logLevel: logLevel.ERROR });
  const consumer = kafka.consumer({ groupId: options.groupId });
  // Delivery is at least once, so an event can arrive twice. A real billing service records the
  // event id with the invoice line in one transaction (a unique key on it); this example only
  // remembers the ids it has seen while it runs.
  const invoiced = new Set<string>();

  await consumer.connect();
  await consumer.subscribe({ topic: options.topic, fromBeginning: true });
  await consumer.run({
    // Messages of a partition are handled one at a time, in order: that is what keeps each
    // customer's (and so each balance's) events in order.
    eachMessage: async ({ message }) => {
      if (message.value === null) return;
      // The writer's schema id is in the message; the client fetches (and caches) that schema.
      const event = (await registry.decode(message.value)) as LedgerEventRecord;
      const invoice = invoiceToBeOf(event);
      if (invoice === undefined || invoiced.has(invoice.eventId)) return;
      await options.onInvoice(invoice);
      invoiced.add(invoice.eventId);
    },
  });
  return {
    async stop() {
      await consumer.disconnect();
    },
  };
}
