import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { leaseHolders } from '@tally/postgres';
import { ledgerEventAvroSchema, LEDGER_EVENT_TYPES } from '@tally/schemas';
import { capturedLog, dumpPartitionLog, stackConfig, uniqueName, waitFor } from '@tally/test-support';
import { CompressionTypes, ConfigResourceTypes, Kafka, type Producer } from 'kafkajs';
import { createPostgresCheckpointStore } from '@tally/runtime';
import { LedgerSchemaRefusedError } from './ledgerRelayErrors';
import { startExampleBillingConsumer, type InvoiceToBe } from './exampleBillingConsumer';
import { LedgerRelayPublishingError, rewindLedgerRelay, RewindNotBackwardError } from './rewindLedgerRelay';
import {
  createLedgerRelayHarness,
  expectEveryEventInStreamOrder,
  firstDeliveries,
  type LedgerRelayHarness,
} from './testing/ledgerRelayHarness';

jest.setTimeout(180_000);

describe('ledger relay on Kafka, the registry and PostgreSQL', () => {
  let harness: LedgerRelayHarness;

  beforeAll(async () => {
    harness = await createLedgerRelayHarness('ledger_relay');
  });

  afterAll(async () => {
    await harness?.close();
  });

  it('publishes every ledger event exactly once, keyed by customer, in stream order per balance, with the registered schema', async () => {
    const topic = await harness.createTopic(3);
    const reader = await harness.consume(topic);
    const balances = await harness.openBalances();
    // Written before the relay starts: it catches up from its (empty) checkpoint.
    await harness.driveRound(balances, 0);
    const relay = harness.createRelay(topic);
    await relay.start();
    // Written while it is live.
    await harness.driveRound(balances, 1);

    const stored = await harness.storedLedgerEvents();
    expect(new Set(stored.map((event) => event.type))).toEqual(new Set(LEDGER_EVENT_TYPES));
    await waitFor(() => reader.messages.length >= stored.length, {
      description: `${stored.length} ledger events on ${topic}`,
      timeoutMs: 60_000,
    });
    expectEveryEventInStreamOrder(reader.messages, stored);
    // Nothing failed, so nothing was sent twice.
    expect(reader.messages).toHaveLength(stored.length);

    // Keyed by customer: all of a customer's events, across its balances, on one partition.
    const partitionsByCustomer = new Map<string, Set<number>>();
    for (const { key, partition } of reader.messages) {
      partitionsByCustomer.set(key, (partitionsByCustomer.get(key) ?? new Set()).add(partition));
    }
    // The relay publishes the whole store, which holds the events of this file's other tests too.
    expect([...partitionsByCustomer.keys()]).toEqual(expect.arrayContaining(balances.map((balance) => balance.customerId)));
    for (const partitions of partitionsByCustomer.values()) expect(partitions.size).toBe(1);

    // The subject of the topic-name strategy holds the .avsc, and every message names that version.
    const subject = `${topic}-value`;
    const latest = (await (await fetch(`${stackConfig.schemaRegistryUrl}/subjects/${subject}/versions/latest`)).json()) as {
      id: number;
      schema: string;
    };
    expect(JSON.parse(latest.schema)).toEqual(ledgerEventAvroSchema);
    expect(new Set(reader.messages.map((message) => message.schemaId))).toEqual(new Set([latest.id]));

    const head = stored[stored.length - 1]!.position;
    await waitFor(() => relay.lag().events === 0 && relay.lag().seconds === 0, { description: 'no lag once caught up' });
    expect(await createPostgresCheckpointStore(harness.db.pool).load(`relay-${topic}`)).toBe(head);
    await relay.stop();
  });

  it('publishes with the codec it is given, which the billing side reads', async () => {
    const topic = await harness.createTopic(1);
    const reader = await harness.consume(topic);
    const balances = await harness.openBalances();
    await harness.driveRound(balances, 0);
    const relay = harness.createRelay(topic, { compression: CompressionTypes.LZ4 });
    await relay.start();
    const stored = await harness.storedLedgerEvents();
    await waitFor(() => reader.messages.length >= stored.length, { description: `${stored.length} ledger events on ${topic}`, timeoutMs: 60_000 });
    expectEveryEventInStreamOrder(reader.messages, stored);
    await relay.stop();
    // The batches as the broker stored them.
    expect(await dumpPartitionLog(harness.admin, topic, 0)).toMatch(/compresscodec: lz4/i);
  });

  it('restarted mid-stream, and replaying after a lost checkpoint write, still delivers every event in order once deduplicated', async () => {
    const topic = await harness.createTopic(3);
    const reader = await harness.consume(topic);
    const checkpointName = uniqueName('restarted');
    const checkpoints = createPostgresCheckpointStore(harness.db.pool);
    const balances = await harness.openBalances();
    await harness.driveRound(balances, 0);

    const first = harness.createRelay(topic, { checkpointName, batchSize: 5 });
    await first.start();
    await harness.driveRound(balances, 1);
    await waitFor(() => reader.messages.length >= 20, { description: 'the first relay publishing', timeoutMs: 60_000 });
    await first.stop();
    const stoppedAt = await checkpoints.load(checkpointName);
    expect(stoppedAt).toBeGreaterThan(0n);

    // Written while no relay runs.
    await harness.driveRound(balances, 2);
    // As if the first relay had crashed after Kafka acknowledged its last batches but before it
    // saved the checkpoint: the next relay publishes those batches again. Written by hand, since
    // the store never moves a checkpoint backwards.
    await harness.db.pool.query('UPDATE subscription_checkpoints SET position = $2 WHERE name = $1', [checkpointName, (stoppedAt / 2n).toString()]);

    const second = harness.createRelay(topic, { checkpointName, batchSize: 5 });
    await second.start();
    // Written while the second relay is live.
    await harness.driveRound(balances, 3);

    const stored = await harness.storedLedgerEvents();
    expect(stoppedAt).toBeLessThan(stored[stored.length - 1]!.position);
    await waitFor(() => firstDeliveries(reader.messages).length >= stored.length, {
      description: `${stored.length} distinct ledger events on ${topic}`,
      timeoutMs: 60_000,
    });
    expectEveryEventInStreamOrder(reader.messages, stored);
    expect(reader.messages.length).toBeGreaterThan(stored.length);
    await second.stop();
  });

  it('is rewound to a time by an operator only while no relay publishes, and then publishes from there again', async () => {
    const topic = await harness.createTopic(2);
    const reader = await harness.consume(topic);
    const checkpointName = uniqueName('rewound');
    const balances = await harness.openBalances();
    await harness.driveRound(balances, 0);
    await harness.driveRound(balances, 1);
    const stored = await harness.storedLedgerEvents();
    const relay = harness.createRelay(topic, { checkpointName });
    await relay.start();
    await waitFor(() => reader.messages.length >= stored.length, { description: `${stored.length} ledger events on ${topic}`, timeoutMs: 60_000 });
    const at = { pool: harness.db.pool, eventStore: harness.store, checkpointName };

    // The first event recorded at a later time than the one before it, past the middle: publishing starts again there.
    const from = stored.findIndex((event, index) => index > stored.length / 2 && event.recordedAt > stored[index - 1]!.recordedAt);
    const time = stored[from]!.recordedAt;
    // Refused while the relay holds its lease, naming the holder's backend.
    await expect(rewindLedgerRelay({ ...at, to: { time } })).rejects.toThrow(new RegExp(`a ledger relay holds ${checkpointName} \\(PostgreSQL backend \\d+\\)`));
    await expect(rewindLedgerRelay({ ...at, to: { time } })).rejects.toBeInstanceOf(LedgerRelayPublishingError);
    await relay.stop();
    const checkpoints = createPostgresCheckpointStore(harness.db.pool);
    const stoppedAt = await checkpoints.load(checkpointName);

    const asked = await rewindLedgerRelay({ ...at, to: { time }, dryRun: true });
    expect(asked).toEqual({
      previous: stoppedAt,
      position: stored[from - 1]!.position,
      firstEvent: { position: stored[from]!.position, recordedAt: time },
      head: await harness.store.headPosition(),
      dryRun: true,
    });
    expect(await checkpoints.load(checkpointName)).toBe(stoppedAt);
    // Forward is the relay's way, never an operator's.
    await expect(rewindLedgerRelay({ ...at, to: { position: stoppedAt + 1n } })).rejects.toBeInstanceOf(RewindNotBackwardError);

    expect(await rewindLedgerRelay({ ...at, to: { time } })).toMatchObject({ previous: stoppedAt, position: stored[from - 1]!.position, dryRun: false });
    expect(await checkpoints.load(checkpointName)).toBe(stored[from - 1]!.position);
    const again = harness.createRelay(topic, { checkpointName });
    await again.start();
    const republished = stored.slice(from).map((event) => event.id);
    await waitFor(() => reader.messages.length >= stored.length + republished.length, { description: 'the rewound stretch published again', timeoutMs: 60_000 });
    await again.stop();
    // Exactly the events from the time on, once more; consumers drop them by id.
    expect(reader.messages.slice(stored.length).map((message) => message.value.eventId).sort()).toEqual([...republished].sort());
    expectEveryEventInStreamOrder(reader.messages, stored);
  });

  it('of two relays sharing a checkpoint, one publishes and the other takes over when it stops: every event once', async () => {
    const topic = await harness.createTopic(3);
    const reader = await harness.consume(topic);
    const balances = await harness.openBalances();
    await harness.driveRound(balances, 0);
    // The main job scaled out: the same checkpoint name in both.
    const relays = [harness.createRelay(topic, { standbyPollMs: 100 }), harness.createRelay(topic, { standbyPollMs: 100 })];
    await Promise.all(relays.map((relay) => relay.start()));
    expect(relays.filter((relay) => relay.isPublishing())).toHaveLength(1);
    const publishing = relays.find((relay) => relay.isPublishing())!;
    const standingBy = relays.find((relay) => !relay.isPublishing())!;

    let stored = await harness.storedLedgerEvents();
    await waitFor(() => reader.messages.length >= stored.length, { description: `${stored.length} events on ${topic}`, timeoutMs: 60_000 });
    // The standby reports the publishing relay's progress, from the shared checkpoint.
    await waitFor(() => standingBy.lag().events === 0, { description: 'the standby seeing no lag' });

    await publishing.stop();
    expect(publishing.isPublishing()).toBe(false);
    await waitFor(() => standingBy.isPublishing(), { description: 'the standby taking over', timeoutMs: 10_000 });
    await harness.driveRound(balances, 1);

    stored = await harness.storedLedgerEvents();
    await waitFor(() => reader.messages.length >= stored.length, { description: `${stored.length} events on ${topic}`, timeoutMs: 60_000 });
    expectEveryEventInStreamOrder(reader.messages, stored);
    // A clean handover from the checkpoint: nothing was published twice.
    expect(reader.messages).toHaveLength(stored.length);
    await standingBy.stop();
  });

  it('stopped between the parts of a batch, finishes the batch before the standby takes over: nothing published twice', async () => {
    const topic = await harness.createTopic(1);
    // Each event fits; the batch of about a hundred goes in several parts.
    await harness.admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'max.message.bytes', value: '6000' }] }],
    });
    const reader = await harness.consume(topic);
    const balances = await harness.openBalances();
    await harness.driveRound(balances, 0);
    const first = harness.createRelay(topic, { batchSize: 500, standbyPollMs: 100 });
    // The hook: once the broker acknowledged the first part, the process is told to stop, before
    // the next part goes (an orderly stop, such as a deployment's SIGTERM, arriving mid-batch).
    let acknowledged = 0;
    let stopping: Promise<void> | undefined;
    const producer = Kafka.prototype.producer;
    const hook = jest.spyOn(Kafka.prototype, 'producer').mockImplementation(function (this: Kafka, config): Producer {
      const created = producer.call(this, config);
      const send = created.send.bind(created);
      created.send = async (record) => {
        const result = await send(record);
        acknowledged += 1;
        if (acknowledged === 1) stopping = first.stop();
        return result;
      };
      return created;
    });
    try {
      await first.start();
      await waitFor(() => stopping !== undefined, { description: 'the first part acknowledged and the relay told to stop', timeoutMs: 60_000 });
      await stopping;
      // The first relay's sends only: the standby's must not count towards the batch's parts.
      hook.mockRestore();
      const firstRelaySends = acknowledged;

      const standby = harness.createRelay(topic, { batchSize: 500, standbyPollMs: 100 });
      await standby.start();
      await waitFor(() => standby.isPublishing(), { description: 'the standby taking over', timeoutMs: 10_000 });
      await harness.driveRound(balances, 1);
      const stored = await harness.storedLedgerEvents();
      // One partition: once the last event is there, whatever was published before it is too.
      await waitFor(() => firstDeliveries(reader.messages).length >= stored.length, { description: `${stored.length} events on ${topic}`, timeoutMs: 60_000 });
      expectEveryEventInStreamOrder(reader.messages, stored);
      expect(reader.messages.length - stored.length).toBe(0);
      // The first relay's batch did go in parts (else there was nothing between them to stop in).
      expect(firstRelaySends).toBeGreaterThanOrEqual(2);
      await standby.stop();
    } finally {
      hook.mockRestore();
    }
  });

  it('stops publishing when its lease connection is terminated, and the standby takes over without a gap', async () => {
    const topic = await harness.createTopic(3);
    const reader = await harness.consume(topic);
    const balances = await harness.openBalances();
    const options = { standbyPollMs: 100, leaseHeartbeatMs: 100 };
    const first = harness.createRelay(topic, options);
    await first.start();
    const second = harness.createRelay(topic, options);
    await second.start();
    expect([first.isPublishing(), second.isPublishing()]).toEqual([true, false]);
    await harness.driveRound(balances, 0);

    // What an operator's pg_terminate_backend, a network cut or a PostgreSQL restart does to the
    // session holding the lease; PostgreSQL frees the lock with it.
    const holders = await leaseHolders(harness.db.pool, [`relay-${topic}`]);
    expect(holders).toHaveLength(1);
    await harness.db.pool.query('SELECT pg_terminate_backend($1)', [holders[0]]);
    await waitFor(() => !first.isPublishing() && second.isPublishing(), { description: 'the standby taking over', timeoutMs: 10_000 });
    await harness.driveRound(balances, 1);

    const stored = await harness.storedLedgerEvents();
    await waitFor(() => firstDeliveries(reader.messages).length >= stored.length, {
      description: `${stored.length} distinct ledger events on ${topic}`,
      timeoutMs: 60_000,
    });
    // Some events may be on the topic twice (both published in the moment of the handover); none is missing.
    expectEveryEventInStreamOrder(reader.messages, stored);
    await Promise.all([first.stop(), second.stop()]);
    expect(await createPostgresCheckpointStore(harness.db.pool).load(`relay-${topic}`)).toBe(stored[stored.length - 1]!.position);
  });

  it('reports its lag while the broker cannot be reached, moves no checkpoint, and still stops', async () => {
    const topic = await harness.createTopic(1);
    await harness.driveRound(await harness.openBalances(), 0);
    const checkpointName = uniqueName('unreachable');
    const relay = harness.createRelay(topic, {
      checkpointName,
      kafka: { brokers: ['127.0.0.1:1'], clientId: uniqueName('unreachable') },
    });
    const head = await harness.store.headPosition();
    await relay.start();

    // The whole log is behind, as soon as the relay runs; the wait grows from the oldest event's age.
    expect(relay.lag().events).toBe(Number(head));
    await waitFor(() => relay.lag().seconds > 0, { description: 'a growing lag while nothing can be published' });
    expect(relay.lag().events).toBe(Number(head));
    await relay.stop();
    expect(await createPostgresCheckpointStore(harness.db.pool).load(checkpointName)).toBe(0n);
  });

  it('starts at once while the registry is unreachable, retrying the registration in the background until stopped', async () => {
    const { logger, lines } = capturedLog('warn');
    await harness.driveRound(await harness.openBalances(), 0);
    const checkpointName = uniqueName('registry_down');
    const relay = harness.createRelay('no_topic_needed', { registryUrl: 'http://127.0.0.1:1/apis/ccompat/v7', checkpointName, logger });
    // What main starts after the relay (the API and its /health) must not wait for the registry.
    await relay.start();
    expect(relay.state()).toBe('running');
    await waitFor(() => lines.filter((line) => line.includes('registering the ledger event schema failed; retrying')).length >= 2, {
      description: 'two failed registrations',
    });
    // The outage shows as the relay's lag, as a broker's does.
    await waitFor(() => relay.lag().events > 0 && relay.lag().seconds > 0, { description: 'a growing lag while the schema cannot be registered' });
    await relay.stop();
    expect(relay.state()).toBe('stopped');
    expect(await createPostgresCheckpointStore(harness.db.pool).load(checkpointName)).toBe(0n);
  });

  it('fails, naming the cause, when the registry refuses its credentials (401), instead of retrying for ever', async () => {
    // A registry that answers every request 401, as one with authentication does to wrong credentials.
    const server = createServer((_request, response) => {
      response.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error_code: 401, message: 'Unauthorized' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const { logger, lines } = capturedLog('error');
      const relay = harness.createRelay('no_topic_needed', { registryUrl: `http://127.0.0.1:${port}`, checkpointName: uniqueName('registry_401'), logger });
      let failure: unknown;
      relay.onFailure((error) => (failure = error));
      await relay.start();
      await waitFor(() => failure !== undefined, { description: 'the relay to fail' });
      expect(failure).toBeInstanceOf(LedgerSchemaRefusedError);
      expect((failure as Error).message).toMatch(/credentials were refused \(401/);
      expect(lines.join('\n')).toContain('credentials were refused');
      await relay.stop();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  describe("under a subject rule stricter than the registry client's BACKWARD", () => {
    const registryRequest = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
      const response = await fetch(`${stackConfig.schemaRegistryUrl}${path}`, {
        method,
        headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, json: await response.json().catch(() => undefined) };
    };
    const subjectOf = (topic: string) => `${topic}-value`;
    const setRule = (subject: string, compatibility: string) => registryRequest('PUT', `/config/${subject}`, { compatibility });
    const ruleOf = async (subject: string) => (await registryRequest('GET', `/config/${subject}`)).json as { compatibilityLevel?: string };

    it('registers a compatible schema under FULL_TRANSITIVE, publishes, and leaves the rule as the operator set it', async () => {
      const topic = await harness.createTopic(1);
      const reader = await harness.consume(topic);
      // The billing team keeps the ledger contract FULL_TRANSITIVE, set before the first relay ran.
      expect((await setRule(subjectOf(topic), 'FULL_TRANSITIVE')).status).toBe(200);
      await harness.driveRound(await harness.openBalances(), 0);
      const stored = await harness.storedLedgerEvents();
      const relay = harness.createRelay(topic, { checkpointName: uniqueName('full_transitive') });
      let failure: unknown;
      relay.onFailure((error) => (failure = error));
      await relay.start();
      await waitFor(() => failure !== undefined || reader.messages.length >= stored.length, { description: `${stored.length} events on ${topic}`, timeoutMs: 30_000 });
      expect(failure).toBeUndefined();
      expect(await ruleOf(subjectOf(topic))).toEqual({ compatibilityLevel: 'FULL_TRANSITIVE' });
      await relay.stop();
    });

    it('does not set a rule of its own on a subject it registers first', async () => {
      const topic = await harness.createTopic(1);
      const reader = await harness.consume(topic);
      await harness.driveRound(await harness.openBalances(), 0);
      const relay = harness.createRelay(topic, { checkpointName: uniqueName('no_rule_written') });
      await relay.start();
      await waitFor(() => reader.messages.length > 0, { description: `events on ${topic}`, timeoutMs: 30_000 });
      await relay.stop();
      // No subject-level rule: it reads as that of a subject registered by a plain POST, which
      // leaves the registry's global rule (or a stricter one an operator sets) to apply.
      const control = uniqueName('no_rule_control-value');
      await registryRequest('POST', `/subjects/${control}/versions`, { schema: JSON.stringify(ledgerEventAvroSchema) });
      expect(await ruleOf(subjectOf(topic))).toEqual(await ruleOf(control));
      expect(await ruleOf(subjectOf(topic))).not.toEqual({ compatibilityLevel: 'BACKWARD' });
    });

    it('fails with LedgerSchemaRefusedError, instead of retrying for ever, when the subject refuses the schema', async () => {
      const topic = await harness.createTopic(1);
      await setRule(subjectOf(topic), 'FULL_TRANSITIVE');
      // A version already on the subject that the relay's schema is incompatible with.
      const other = { type: 'record', name: 'LedgerEvent', namespace: 'io.tally.ledger', fields: [{ name: 'eventId', type: 'long' }] };
      expect((await registryRequest('POST', `/subjects/${subjectOf(topic)}/versions`, { schema: JSON.stringify(other) })).status).toBe(200);
      await harness.driveRound(await harness.openBalances(), 0);
      const relay = harness.createRelay(topic, { checkpointName: uniqueName('refused_schema') });
      let failure: unknown;
      relay.onFailure((error) => (failure = error));
      await relay.start();
      await waitFor(() => failure !== undefined, { description: 'the relay to fail', timeoutMs: 30_000 });
      expect(failure).toBeInstanceOf(LedgerSchemaRefusedError);
      expect(await ruleOf(subjectOf(topic))).toEqual({ compatibilityLevel: 'FULL_TRANSITIVE' });
      await relay.stop();
    });
  });

  it('feeds the example billing consumer one invoice-to-be per purchase, though every event is on the topic twice', async () => {
    const topic = await harness.createTopic(3);
    const balances = await harness.openBalances();
    await harness.driveRound(balances, 0);
    // Two relays with checkpoints of their own: each publishes the whole ledger once.
    const relays = [harness.createRelay(topic), harness.createRelay(topic, { checkpointName: uniqueName('second_copy') })];
    await Promise.all(relays.map((relay) => relay.start()));
    await waitFor(() => relays.every((relay) => relay.lag().events === 0), { description: 'both relays caught up', timeoutMs: 60_000 });

    const purchases = (await harness.storedLedgerEvents()).filter(
      (event) => event.type === 'CreditToppedUp' && event.data.source === 'purchase',
    );
    const groupId = uniqueName('billing_example');
    const invoices: InvoiceToBe[] = [];
    const consumer = await startExampleBillingConsumer({
      brokers: stackConfig.kafkaBrokers,
      registryUrl: stackConfig.schemaRegistryUrl,
      topic,
      groupId,
      onInvoice: (invoice) => {
        invoices.push(invoice);
      },
    });
    try {
      const ends = await harness.admin.fetchTopicOffsets(topic);
      // Done when the group has committed every partition's end: it has seen both copies. Two
      // customers never fill three partitions, and a group commits nothing for an empty one (its
      // committed offset stays -1), so a partition with nothing to read counts as read.
      const toRead = ends.filter(({ high, low }) => high !== low);
      expect(toRead.length).toBeGreaterThan(0);
      await waitFor(
        async () => {
          const [committed] = await harness.admin.fetchOffsets({ groupId, topics: [topic] });
          return toRead.every(({ partition, offset }) => committed?.partitions.find((p) => p.partition === partition)?.offset === offset);
        },
        { description: 'the example consumer reading the whole topic', timeoutMs: 60_000 },
      );
    } finally {
      await consumer.stop();
    }

    expect(invoices.map((invoice) => invoice.eventId).sort()).toEqual(purchases.map((event) => event.id).sort());
    const purchase = purchases[0]!;
    const metadata = purchase.metadata as { balanceId: string; customerId: string; productId: string };
    expect(invoices.find((invoice) => invoice.eventId === purchase.id)).toEqual({
      eventId: purchase.id,
      customerId: metadata.customerId,
      balanceId: metadata.balanceId,
      productId: metadata.productId,
      bundleId: 'bundle-100',
      quantity: 1,
      unitPrice: '9.99',
      totalPrice: '9.99',
      currency: 'EUR',
      credits: '100',
      purchasedAt: new Date(purchase.data.occurredAt as string),
    });
  });
});
