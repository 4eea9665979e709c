import { spawn } from 'node:child_process';
import { readTopicToEnds } from '@tally/kafka';
import { createDeadLetterLog, createDeadLetterRedrives, DEAD_LETTER_HEADERS, deadLetterRecordOf, REDRIVE_LEASE_NAME, REDRIVEN_FROM_HEADER } from '@tally/metering';
import { tryAcquireAdvisoryLease } from '@tally/postgres';
import {
  createTestKafka,
  createTestSchema,
  createTestTopic,
  deleteTopics,
  runTallyCommand,
  stackConfig,
  startKafkaProxy,
  TALLY_CLI,
  uniqueName,
  waitCuttingConnections,
  waitFor,
  type TestSchema,
} from '@tally/test-support';
import { Redis } from 'ioredis';
import { ConfigResourceTypes, type Admin, type Kafka, type KafkaMessage, type Producer } from 'kafkajs';
import pino from 'pino';

jest.setTimeout(120_000);

/** Kafka's Fetch request's API key. */
const FETCH = 1;
const operator = { keyId: 'a1b2c3d4e5f6', keyName: 'operator' };

/** `tally redrive` and `tally dead-letter` as an operator runs them: the built command, its arguments, its words and exit code. */
describe('tally redrive and tally dead-letter', () => {
  let kafka: Kafka;
  let admin: Admin;
  let producer: Producer;
  let usageTopic: string;
  let dlqTopic: string;
  // The lease of a send-back is keyed by Tally's schema: this test's own.
  let db: TestSchema;
  let redis: Redis;
  const keyPrefix = uniqueName('redrive_command');

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'redrive_command' });
    redis = new Redis(stackConfig.redisUrl);
    kafka = createTestKafka(uniqueName('redrive-command'));
    admin = kafka.admin();
    producer = kafka.producer({ idempotent: true });
    await Promise.all([admin.connect(), producer.connect()]);
    usageTopic = await createTestTopic(admin, { prefix: 'redrive_usage', partitions: 1 });
    dlqTopic = await createTestTopic(admin, { prefix: 'redrive_dlq', partitions: 1 });
    const letter = (customer: string, code: string) => ({
      key: customer,
      value: `{"id":"${customer}-1"}`,
      headers: { [DEAD_LETTER_HEADERS.errorCode]: code, [DEAD_LETTER_HEADERS.sourceTopic]: usageTopic, [DEAD_LETTER_HEADERS.at]: '2026-03-01T12:00:00.000Z' },
    });
    await producer.send({ topic: dlqTopic, acks: -1, messages: [letter('dave', 'balance_not_opened'), letter('erin', 'undecodable_usage_event')] });
  });

  afterAll(async () => {
    await deleteTopics(admin, [usageTopic, dlqTopic]).catch(() => undefined);
    await Promise.all([producer?.disconnect(), admin?.disconnect()]);
    await db?.drop();
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) await redis.unlink(...keys);
    redis?.disconnect();
  });

  const cliEnv = () => ({ TALLY_USAGE_TOPIC: usageTopic, TALLY_DLQ_TOPIC: dlqTopic, TALLY_DATABASE_URL: db.connectionString, TALLY_DATABASE_SCHEMA: db.schema, TALLY_REDIS_URL: stackConfig.redisUrl, TALLY_REDIS_KEY_PREFIX: keyPrefix });

  const tally = (...args: string[]) => runTallyCommand(args, cliEnv());

  const usageEnd = async () => (await admin.fetchTopicOffsets(usageTopic))[0]!.high;

  it('prints one letter whole with tally dead-letter, and says so where there is none (exit 3); a malformed command line exits 2', async () => {
    const read = await tally('dead-letter', '--partition', '0', '--offset', '1');
    expect(read.code).toBe(0);
    expect(JSON.parse(read.stdout)).toMatchObject({
      partition: 0,
      offset: '1',
      errorCode: 'undecodable_usage_event',
      key: 'erin',
      headers: expect.arrayContaining([{ name: DEAD_LETTER_HEADERS.errorCode, value: 'undecodable_usage_event', encoding: 'utf8' }]),
      value: { format: 'json', record: { id: 'erin-1' }, base64: Buffer.from('{"id":"erin-1"}').toString('base64'), unreadable: null },
    });
    const missing = await tally('dead-letter', '--partition', '0', '--offset', '999999');
    expect([missing.code, missing.stderr.trim()]).toEqual([3, `tally: no dead letter at partition 0, offset 999999 of ${dlqTopic}: the partition ends before it (next offset 2)`]);
    const malformed = await tally('dead-letter', '--partition', '0', '--offset', 'last');
    expect([malformed.code, malformed.stderr.trim()]).toEqual([2, 'tally: --partition and --offset take non-negative integers']);
    // The place it prints is what `redrive --letter` takes; refused before any run starts when it is not one.
    const notAPlace = await tally('redrive', '--letter', '0@1');
    expect([notAPlace.code, notAPlace.stderr.trim()]).toEqual([2, 'tally: --letter takes <partition>:<offset>, as GET /v1/dead-letters shows them; not 0@1']);
    // As many as the API's `letters` take, and no more (repeats count once).
    const tooMany = await tally('redrive', ...Array.from({ length: 101 }, (_, offset) => ['--letter', `0:${offset}`]).flat());
    expect([tooMany.code, tooMany.stderr.trim()]).toEqual([2, 'tally: --letter picks at most 100 letters a run, as the API does; send the rest in another run, or by --error-code']);
    // A pick where there is no letter (past the partition's end, a partition the topic has not) is named, exit 3, as above.
    const absent = await tally('redrive', '--letter', '0:1', '--letter', '0:5', '--letter', '3:0', '--dry-run');
    expect(absent.code).toBe(3);
    expect(absent.stdout).toContain('would send back 1');
    expect(absent.stderr.trim()).toBe(`tally: no dead letter at 0:5, 3:0 of ${dlqTopic} (past the end of the partition, or a partition the topic has not): nothing was sent for them`);
    const twice = await tally('redrive', '--letter', '0:1', '--error-code', 'balance_not_opened');
    expect([twice.code, twice.stderr.trim()]).toEqual([2, 'tally: --all, --error-code and --letter exclude each other']);
  });

  it('asks which letters to send back, counts them by code in a dry run, and sends back the named ones', async () => {
    const unnamed = await tally('redrive');
    expect(unnamed.code).toBe(2);
    expect(unnamed.stderr).toContain('--error-code <code>');
    const both = await tally('redrive', '--all', '--error-code', 'balance_not_opened');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('exclude each other');
    expect(await tally('redrive', '--since', 'last tuesday', '--all')).toMatchObject({ code: 2, stderr: expect.stringContaining('--since must be ISO-8601 with a zone') });

    const dry = await tally('redrive', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`read 2 dead letter(s) of ${dlqTopic}; would send back 2 to ${usageTopic} (balance_not_opened: 1, undecodable_usage_event: 1)`);
    expect(await usageEnd()).toBe('0');

    const later = await tally('redrive', '--all', '--since', '2026-03-01T12:00:01Z');
    expect(later.stdout).toContain('sent back 0');
    expect(later.stdout).toContain('left: 2 not selected');

    const sent = await tally('redrive', '--error-code', 'balance_not_opened');
    expect(sent.code).toBe(0);
    expect(sent.stdout).toContain(`sent back 1 to ${usageTopic} (balance_not_opened: 1)`);
    expect(sent.stdout).toContain('left: 1 not selected');
    const sentBack: KafkaMessage[] = [];
    await readTopicToEnds({ kafka, topic: usageTopic, purpose: 'redrive-test', eachBatch: async (_partition, messages) => void sentBack.push(...messages) });
    expect(sentBack).toHaveLength(1);
    const [message] = sentBack;
    expect(message!.key!.toString()).toBe('dave');
    expect(message!.value!.toString()).toBe('{"id":"dave-1"}');
    expect(message!.headers![REDRIVEN_FROM_HEADER]!.toString()).toBe('0:0');
    // The console's list of dead letters says which one went back, as after its own Send back.
    const log = createDeadLetterLog({ redis, keyPrefix });
    const letters: KafkaMessage[] = [];
    await readTopicToEnds({ kafka, topic: dlqTopic, purpose: 'redrive-test', eachBatch: async (_partition, messages) => void letters.push(...messages) });
    await log.record(letters.map((letter) => deadLetterRecordOf(0, letter)));
    const listed = Object.fromEntries((await log.recent(10)).map((letter) => [letter.key, letter.sentBackAt]));
    expect(listed.erin).toBeNull();
    expect(Date.parse(listed.dave!)).not.toBeNaN();
  });

  it('refuses to run while another send-back (the console\'s, or another shell\'s) holds the lease', async () => {
    const held = await tryAcquireAdvisoryLease({ pool: db.pool, name: REDRIVE_LEASE_NAME });
    try {
      const refused = await tally('redrive', '--all');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('dead letters are being sent back already');
    } finally {
      await held!.release();
    }
    expect((await tally('redrive', '--all', '--dry-run')).code).toBe(0);
  });

  /** What the console's API process holds: the same schema (the lease) and Redis prefix (the runs). */
  const consoleSide = () =>
    createDeadLetterRedrives({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive-console') },
      dlqTopic,
      usageTopic,
      redis,
      keyPrefix,
      deadLetters: createDeadLetterLog({ redis, keyPrefix }),
      pool: db.pool,
      logger: pino({ level: 'silent' }),
    });

  /**
   * `tally redrive --all` reaching Kafka through a proxy that swallows its fetches, so its read of
   * the dead-letter topic waits until the run is stopped; answered once the run is listed as running.
   */
  async function stalledRedrive(listing: ReturnType<typeof consoleSide>) {
    const proxy = await startKafkaProxy(stackConfig.kafkaBrokers[0]!);
    proxy.swallow([FETCH]);
    const child = spawn(process.execPath, [TALLY_CLI, 'redrive', '--all'], { env: { ...process.env, ...cliEnv(), TALLY_KAFKA_BROKERS: proxy.broker } });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let exitCode: number | null | undefined;
    child.on('exit', (code) => (exitCode = code));
    const running = await waitFor(
      async () => {
        const [newest] = await listing.list(1);
        return newest?.status === 'running' && newest.via === 'cli' ? newest : undefined;
      },
      { description: "the shell's run to be listed as running" },
    );
    await waitFor(() => proxy.swallowedCount() > 0, { description: 'the run to wait on a fetch' });
    return {
      child,
      running,
      stderr: () => stderr,
      /** Its exit code, once it has exited. */
      exited: () => waitCuttingConnections(proxy, () => (exitCode === undefined ? undefined : { exitCode }), { description: 'the command to exit', timeoutMs: 90_000 }),
      async close() {
        if (exitCode === undefined) child.kill('SIGKILL');
        await proxy.close();
      },
    };
  }

  it('lists its run where the console lists send-backs, and stops when the console asks', async () => {
    const listing = consoleSide();
    const command = await stalledRedrive(listing);
    try {
      expect(command.running).toMatchObject({ requestedBy: null, errorCodes: 'all', dryRun: false });
      expect(await listing.cancel(command.running.id, operator)).toMatchObject({ status: 'running', cancelRequestedBy: operator });
      expect((await command.exited()).exitCode).toBe(1);
      expect(command.stderr()).toContain(`send-back ${command.running.id} stopped by operator from the console or the API`);
      expect(await listing.get(command.running.id)).toMatchObject({ status: 'cancelled', via: 'cli', cancelRequestedBy: operator, error: null });
    } finally {
      await command.close();
    }
  });

  it.each([
    ['Ctrl-C', 'SIGINT'],
    ['a dropped SSH session', 'SIGHUP'],
  ] as const)('on %s (%s) records its run as interrupted, how far it came, and frees the lease', async (_, signal) => {
    const listing = consoleSide();
    const command = await stalledRedrive(listing);
    try {
      command.child.kill(signal);
      expect((await command.exited()).exitCode).toBe(1);
      expect(command.stderr()).toContain(`send-back ${command.running.id} interrupted: the process is stopping`);
      expect(await listing.get(command.running.id)).toMatchObject({ status: 'interrupted', via: 'cli', error: 'the process is stopping' });
      const lease = await tryAcquireAdvisoryLease({ pool: db.pool, name: REDRIVE_LEASE_NAME });
      expect(lease).toBeDefined();
      await lease!.release();
    } finally {
      await command.close();
    }
  });

  it('sends back the letters the usage topic takes, names one larger than it takes (left in the dead-letter topic, exit 3), and sends it alone once the topic is raised', async () => {
    // Topics of its own: a usage topic taking at most 2,000 bytes a message.
    const smallUsage = await createTestTopic(admin, { prefix: 'redrive_small_usage', partitions: 1 });
    const ownDlq = await createTestTopic(admin, { prefix: 'redrive_small_dlq', partitions: 1 });
    const setMaxMessageBytes = (bytes: number) =>
      admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: smallUsage, configEntries: [{ name: 'max.message.bytes', value: String(bytes) }] }] });
    try {
      await setMaxMessageBytes(2_000);
      const letter = (id: string, bytes: number) => ({
        key: 'frank',
        value: JSON.stringify({ id, note: 'x'.repeat(bytes) }),
        headers: { [DEAD_LETTER_HEADERS.errorCode]: 'balance_not_opened', [DEAD_LETTER_HEADERS.sourceTopic]: smallUsage },
      });
      await producer.send({ topic: ownDlq, acks: -1, messages: [letter('small-0', 10), letter('large', 5_000), letter('small-2', 10)] });
      const env = { ...cliEnv(), TALLY_USAGE_TOPIC: smallUsage, TALLY_DLQ_TOPIC: ownDlq };
      const ids = async () => {
        const found: string[] = [];
        await readTopicToEnds({ kafka, topic: smallUsage, purpose: 'redrive-test', eachBatch: async (_partition, messages) => void found.push(...messages.map((message) => (JSON.parse(message.value!.toString()) as { id: string }).id)) });
        return found;
      };

      const sent = await runTallyCommand(['redrive', '--all'], env);
      expect(sent.code).toBe(3);
      expect(sent.stdout).toContain(`sent back 2 to ${smallUsage} (balance_not_opened: 2)`);
      expect(sent.stdout).toContain(`1 too large for ${smallUsage}`);
      // Last, after the log's warning of it.
      expect(sent.stderr.trim().split('\n').at(-1)).toBe(
        `tally: 1 dead letter(s) larger than ${smallUsage} takes (its max.message.bytes) left in ${ownDlq}, not sent back: 0:1; raise max.message.bytes, then send them back with --letter <partition>:<offset>`,
      );
      expect(await ids()).toEqual(['small-0', 'small-2']);

      await setMaxMessageBytes(20_000);
      const alone = await runTallyCommand(['redrive', '--letter', '0:1'], env);
      expect([alone.code, alone.stderr]).toEqual([0, '']);
      expect(alone.stdout).toContain(`sent back 1 to ${smallUsage}`);
      expect(await ids()).toEqual(['small-0', 'small-2', 'large']);
    } finally {
      await deleteTopics(admin, [smallUsage, ownDlq]).catch(() => undefined);
    }
  });
});
