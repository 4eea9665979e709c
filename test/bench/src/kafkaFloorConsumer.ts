import { createTestKafka } from '@tally/test-support';

/** What freshness.ts passes in (as JSON, argv[2]). */
export interface KafkaFloorConsumerOptions {
  readonly clientId: string;
  readonly groupId: string;
  readonly topic: string;
}

/**
 * The freshness floor: a plain kafkajs consumer that does nothing but note when each message
 * arrived. It runs as a process of its own, as Tally's consumer does; in the bench's process it
 * shared one event loop with the publisher and the 2 ms poll, and measured them as Kafka's time.
 * It commits nothing and takes every partition at once: what is left is fetching.
 * Prints `ready` once it joined its group, then one line per message, `partition offset
 * receivedAtMs timestampMs`, and leaves on SIGTERM.
 */
async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '') as KafkaFloorConsumerOptions;
  const consumer = createTestKafka(options.clientId).consumer({ groupId: options.groupId, allowAutoTopicCreation: false });
  await consumer.connect();
  await consumer.subscribe({ topic: options.topic, fromBeginning: false });
  consumer.on(consumer.events.GROUP_JOIN, () => process.stdout.write('ready\n'));
  let lines: string[] = [];
  // Written once a tick, not per message: the floor must not wait on its own pipe.
  const flush = setInterval(() => {
    if (lines.length === 0) return;
    process.stdout.write(`${lines.join('\n')}\n`);
    lines = [];
  }, 50);
  await consumer.run({
    // No commits: kafkajs's auto-commit commits after every partition's batch, serially, inside
    // the fetch cycle (about 37 ms at p50 here with six partitions), which is no part of delivery.
    autoCommit: false,
    partitionsConsumedConcurrently: 6,
    eachMessage: async ({ partition, message }) => {
      lines.push(`${partition} ${message.offset} ${Date.now()} ${message.timestamp}`);
    },
  });
  process.once('SIGTERM', () => {
    void consumer.disconnect().finally(() => {
      clearInterval(flush);
      if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
      process.exit(0);
    });
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`kafka floor consumer failed: ${String(error)}\n`);
  process.exit(1);
});
