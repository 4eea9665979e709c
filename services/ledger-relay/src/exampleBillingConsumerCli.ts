/**
 * `node scripts/example-billing-consumer.js` (after `npm run build`): prints an invoice-to-be for
 * every purchase of credits on the ledger topic, until Ctrl-C. Configured by the stack's
 * environment variables (scripts/lib/env.sh), with the same defaults.
 */
import { startExampleBillingConsumer } from './exampleBillingConsumer';

async function main(): Promise<void> {
  const consumer = await startExampleBillingConsumer({
    brokers: (process.env.TALLY_KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
    registryUrl: process.env.TALLY_SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7',
    topic: process.env.TALLY_LEDGER_TOPIC ?? 'credit-ledger',
    groupId: process.env.TALLY_BILLING_EXAMPLE_GROUP ?? 'billing-example',
    onInvoice: (invoice) => {
      process.stdout.write(
        `invoice-to-be: customer ${invoice.customerId} bought ${invoice.quantity} x ${invoice.bundleId} ` +
          `at ${invoice.unitPrice} ${invoice.currency} = ${invoice.totalPrice} ${invoice.currency} ` +
          `(${invoice.credits} credits of ${invoice.productId}, ${invoice.purchasedAt.toISOString()}, event ${invoice.eventId})\n`,
      );
    },
  });
  process.stderr.write('waiting for purchases on the ledger topic; Ctrl-C to stop\n');
  const stop = (): void => {
    void consumer.stop().then(() => process.exit(0));
  };
  // As Tally's own processes stop (services/tally/src/stopSignals.ts; this example stands alone
  // to be copied): a closed terminal (SIGHUP) leaves the group too, rather than dying in it.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`example billing consumer failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
