/**
 * Scenario 5: a corpus of hostile messages (see hostileCorpus.ts) mixed into valid usage
 * traffic on the usage topic. Every one must end as a dead letter with its reason, or be
 * skipped and counted; nothing may crash, stall or be charged that should not be; the valid
 * traffic around them must end exact.
 */
import { createHash } from 'node:crypto';
import { SchemaType } from '@kafkajs/confluent-schema-registry';
import { DEAD_LETTER_HEADERS } from '@tally/metering';
import { createTestRegistry, createTestTopic, deleteTopics } from '@tally/test-support';
import type { KafkaMessage, Message } from 'kafkajs';
import type { SkipReason } from './creditModel';
import { faultScale } from './faultScale';
import { createFaultWorld, type FaultWorld } from './faultWorld';
import { finishScenario } from './finishScenario';
import { createHostileCorpus, HOSTILE_HEADERS, type HostileMessage } from './hostileCorpus';
import { createUsageTraffic } from './usageTraffic';

/** Fixed width, so the probe for the largest message has the same key length as the corpus. */
const CUSTOMERS = Array.from({ length: 20 }, (_, i) => `hostile-customer-${String(i).padStart(2, '0')}`);
const TOPIC_LIMIT = 1_048_588; // Kafka's default max.message.bytes, which the test topics keep.
/** Her only balance is on a product that is then stored in a shape today's validation refuses. */
const INVALID_PRODUCT_CUSTOMER = 'hostile-legacy-customer';
const LEGACY_PRODUCT = { id: 'legacy', name: 'Legacy credits', consumption: [{ event: 'tokens', credits: '1' }], lowBalanceThreshold: null };

const header = (message: KafkaMessage, name: string) => message.headers?.[name]?.toString();

interface ConsumerCounters {
  readonly consumed: number;
  readonly matched: number;
  readonly deadLettered: number;
  readonly skippedByReason: Readonly<Record<string, number>>;
}

describe('fault: hostile messages among valid usage', () => {
  let world: FaultWorld | undefined;

  afterAll(async () => {
    await world?.close();
  });

  /** The largest value the usage topic accepts from the huge message's key and headers: found by asking a scratch topic. */
  async function largestAcceptedValue(target: FaultWorld): Promise<number> {
    const scratch = await createTestTopic(target.admin, { prefix: 'hostile_scratch' });
    const producer = target.kafka.producer({ allowAutoTopicCreation: false, retry: { retries: 0 } });
    await producer.connect();
    const headers = { [HOSTILE_HEADERS.index]: '4', [HOSTILE_HEADERS.kind]: 'huge' };
    let accepted = TOPIC_LIMIT - 4096;
    let refused = TOPIC_LIMIT;
    try {
      while (refused - accepted > 1) {
        const size = Math.floor((accepted + refused) / 2);
        try {
          await producer.send({ topic: scratch, acks: -1, messages: [{ key: CUSTOMERS[0]!, value: Buffer.alloc(size, 0x68), headers }] });
          accepted = size;
        } catch {
          refused = size;
        }
      }
    } finally {
      await producer.disconnect();
      await deleteTopics(target.admin, [scratch]);
    }
    return accepted;
  }

  it(`dead-letters or skips each of ${faultScale.hostile.hostileMessages} hostile messages and meters the rest exactly`, async () => {
    const startedAt = Date.now();
    world = await createFaultWorld('hostile');
    const { model, random } = world;
    await world.startTally('read-side', ['projector', 'api']);
    await world.openCatalog(CUSTOMERS);
    await world.api.createProduct(LEGACY_PRODUCT);
    model.addProduct(LEGACY_PRODUCT);
    const legacyBalance = await world.api.openBalance(INVALID_PRODUCT_CUSTOMER, LEGACY_PRODUCT.id, '10');
    model.openBalance({ balanceId: legacyBalance, customerId: INVALID_PRODUCT_CUSTOMER, productId: LEGACY_PRODUCT.id, starting: '10' });
    // As an older version (or a hand edit) might have stored it: a negative price.
    await world.db.pool.query(`UPDATE credit_products SET consumption = '[{"event":"tokens","credits":"-1"}]' WHERE id = $1`, [LEGACY_PRODUCT.id]);
    const registry = createTestRegistry();
    const { id: foreignId } = await registry.register(
      {
        type: SchemaType.AVRO,
        schema: JSON.stringify({ type: 'record', name: 'NotUsage', namespace: 'io.tally.faults', fields: [{ name: 'name', type: 'string' }, { name: 'size', type: 'long' }] }),
      },
      { subject: `${world.topics.usage}-foreign-value` },
    );
    const foreignType = (await registry.getSchema(foreignId)) as { toBuffer(value: unknown): Buffer };
    const largestValueBytes = await largestAcceptedValue(world);

    const corpus = createHostileCorpus(
      {
        random,
        model,
        customers: CUSTOMERS,
        usageSchemaId: world.usageSchemaId,
        avroBody: (record) => world!.avroBody(record),
        foreignSchema: { id: foreignId, encode: (record) => foreignType.toBuffer(record) },
        largestValueBytes,
        invalidProductCustomer: INVALID_PRODUCT_CUSTOMER,
      },
      faultScale.hostile.hostileMessages,
    );
    const traffic = createUsageTraffic({ model, random, customers: CUSTOMERS, idPrefix: 'valid' });
    const valid = traffic.next(faultScale.hostile.validEvents).map((outgoing) => world!.encode(outgoing));
    // Hostile and valid interleaved at random; the huge ones (value, key or headers) alone, as no batch can hold two.
    const isHuge = (item: HostileMessage) => item.kind.startsWith('huge');
    const mixed: Message[] = random.shuffle([...valid, ...corpus.filter((item) => !isHuge(item)).map((item) => item.message)]);
    const huge = corpus.filter(isHuge);
    const consumer = await world.startTally('consumer', ['consumer']);
    const chunk = Math.ceil(mixed.length / (huge.length + 1));
    for (let start = 0, next = 0; start < mixed.length; start += chunk, next += 1) {
      for (let i = start; i < Math.min(start + chunk, mixed.length); i += 100) await world.produce(mixed.slice(i, Math.min(i + 100, start + chunk)));
      if (huge[next] !== undefined) await world.produce([huge[next]!.message]);
    }

    const differences: string[] = [];
    await world.waitForGroupCaughtUp().catch((error: unknown) => differences.push(`the consumer did not get through the topic: ${String(error)}`));
    const exit = await consumer.kill('SIGTERM');
    if (exit !== 0) differences.push(`the consumer exited with ${exit} on SIGTERM`);
    const lines = consumer.current().lines;
    const crashes = lines.filter((line) => line.includes('"consumer crashed"'));
    differences.push(...crashes.slice(0, 3).map((line) => `consumer crashed: ${line.slice(0, 500)}`));
    const stopped = lines.find((line) => line.includes('"usage consumer stopped"'));
    const counters = stopped === undefined ? undefined : (JSON.parse(stopped) as { counters: ConsumerCounters }).counters;

    const deadLetters = await world.readWholeTopic(world.topics.deadLetter);
    const byIndex = new Map<number, KafkaMessage[]>();
    const reasons: Record<string, number> = {};
    for (const letter of deadLetters) {
      const index = header(letter, HOSTILE_HEADERS.index);
      const code = header(letter, DEAD_LETTER_HEADERS.errorCode) ?? 'none';
      reasons[code] = (reasons[code] ?? 0) + 1;
      if (index === undefined) {
        differences.push(`a valid message was dead-lettered: ${header(letter, DEAD_LETTER_HEADERS.reason)} (${letter.value?.toString('utf8', 0, 200)})`);
        continue;
      }
      byIndex.set(Number(index), [...(byIndex.get(Number(index)) ?? []), letter]);
    }
    const outcomes = { deadLettered: 0, skipped: 0, charged: 0, eitherDeadLettered: 0, eitherSkipped: 0, cut: 0 };
    const check = (item: HostileMessage) => {
      const letters = byIndex.get(item.index) ?? [];
      const where = `hostile #${item.index} (${item.kind})`;
      if (item.expect === 'dlq' || (item.expect === 'dlq-or-skip' && letters.length > 0)) {
        if (letters.length === 0) return differences.push(`${where} is not in the DLQ`);
        const letter = letters[0]!;
        if (!header(letter, DEAD_LETTER_HEADERS.reason)) differences.push(`${where}: dead letter without a reason`);
        if (!header(letter, DEAD_LETTER_HEADERS.errorCode)) differences.push(`${where}: dead letter without an error code`);
        if (header(letter, DEAD_LETTER_HEADERS.sourceTopic) !== world!.topics.usage || header(letter, DEAD_LETTER_HEADERS.sourceOffset) === undefined) {
          differences.push(`${where}: dead letter without its source topic and offset`);
        }
        const original = item.message.value === null || item.message.value === undefined ? Buffer.alloc(0) : Buffer.from(item.message.value);
        const value = letter.value ?? Buffer.alloc(0);
        const cutFrom = header(letter, DEAD_LETTER_HEADERS.valueTruncatedFrom);
        if (cutFrom === undefined) {
          if (!value.equals(original)) differences.push(`${where}: the dead letter's value is not the original`);
        } else {
          // Cut to fit the DLQ topic: a prefix of the original, whose length and digest the headers give.
          outcomes.cut += 1;
          const sha256 = createHash('sha256').update(original).digest('hex');
          if (Number(cutFrom) !== original.length || header(letter, DEAD_LETTER_HEADERS.valueSha256) !== sha256 || !original.subarray(0, value.length).equals(value)) {
            differences.push(`${where}: the cut dead letter does not match its original (length ${cutFrom} of ${original.length})`);
          }
        }
        const keyCutFrom = header(letter, DEAD_LETTER_HEADERS.keyTruncatedFrom);
        if (keyCutFrom !== undefined) {
          outcomes.cut += 1;
          const key = item.message.key === null || item.message.key === undefined ? Buffer.alloc(0) : Buffer.from(item.message.key);
          if (Number(keyCutFrom) !== key.length || header(letter, DEAD_LETTER_HEADERS.keySha256) !== createHash('sha256').update(key).digest('hex') || !key.subarray(0, letter.key?.length ?? 0).equals(letter.key ?? Buffer.alloc(0))) {
            differences.push(`${where}: the cut key does not match its original (length ${keyCutFrom} of ${key.length})`);
          }
        }
        if (header(letter, DEAD_LETTER_HEADERS.headersTruncatedFrom) !== undefined) outcomes.cut += 1;
        if (item.expect === 'dlq') outcomes.deadLettered += 1;
        else outcomes.eitherDeadLettered += 1;
        return;
      }
      if (letters.length > 0) return differences.push(`${where} was dead-lettered (${header(letters[0]!, DEAD_LETTER_HEADERS.reason)}), it should be ${item.expect === 'skip' ? 'skipped' : 'charged'}`);
      if (item.expect === 'skip') outcomes.skipped += 1;
      else if (item.expect === 'charge') outcomes.charged += 1;
      else outcomes.eitherSkipped += 1;
    };
    corpus.forEach(check);
    const duplicates = [...byIndex.values()].filter((letters) => letters.length > 1).length;

    // The consumer's own counters agree with what the model says each publication must do.
    const expected = model.expectedCounters();
    const expectedSkips: Record<SkipReason, number> = { ...expected.skippedByReason, no_balance: expected.skippedByReason.no_balance + outcomes.eitherSkipped };
    if (counters === undefined) differences.push('the consumer logged no counters when it stopped');
    else {
      const total = valid.length + corpus.length;
      if (counters.consumed !== total) differences.push(`the consumer counted ${counters.consumed} messages consumed, ${total} were published`);
      if (counters.deadLettered !== byIndex.size) differences.push(`the consumer counted ${counters.deadLettered} dead letters, the DLQ holds ${byIndex.size}`);
      if (counters.matched !== expected.matched) differences.push(`the consumer matched ${counters.matched} charges, the model ${expected.matched}`);
      for (const [reason, count] of Object.entries(expectedSkips)) {
        if ((counters.skippedByReason[reason] ?? 0) !== count) differences.push(`the consumer skipped ${counters.skippedByReason[reason] ?? 0} as ${reason}, the model ${count}`);
      }
    }
    const kinds: Record<string, number> = {};
    for (const item of corpus) kinds[item.kind] = (kinds[item.kind] ?? 0) + 1;

    const report = await finishScenario(world, {
      scenario: 'hostile-messages',
      startedAt,
      events: { ...traffic.stats(), hostile: corpus.length, largestHugeBytes: largestValueBytes, deadLetters: deadLetters.length },
      faults: { hostileMessage: corpus.length },
      recoveriesMs: [],
      differences,
      extra: { outcomes, duplicateDeadLetters: duplicates, errorCodes: reasons, kinds, counters },
    });
    expect(report.firstDifferences).toEqual([]);
    expect(report.differences).toBe(0);
  });
});
