import { tryAcquireAdvisoryLease } from '@tally/postgres';
import { PassThrough, Transform } from 'node:stream';
import { capturedLog, stackConfig, startKafkaProxy, startTcpProxy, uniqueName, waitCuttingConnections, waitFor, type KafkaProxy } from '@tally/test-support';
import { Redis } from 'ioredis';
import type { Pool } from 'pg';
import {
  createDeadLetterRedrives,
  REDRIVE_LEASE_NAME,
  RedriveNotFoundError,
  RedriveNotRunningError,
  RedriveRunningError,
  type DeadLetterRedrives,
  type DeadLetterRedrivesOptions,
  type RedriveRun,
} from './deadLetterRedrives';
import { createDeadLetterLog } from './deadLetterLog';
import { deadLetterRecordOf } from './deadLetterRecord';
import { consumedAtLeast as consumed, createMeteringTestKit, usageRecord as usage, type MeteringTestKit } from './meteringTestKit.spec';

jest.setTimeout(180_000);

const operator = { keyId: 'a1b2c3d4e5f6', keyName: 'operator' };
const oncall = { keyId: 'f6e5d4c3b2a1', keyName: 'oncall' };
/** Kafka's Fetch request's API key. */
const FETCH = 1;

/** The console's Send back: `tally redrive` run in an API process's background, recorded in Redis, one at a time. */
describe('dead-letter send-backs', () => {
  let kit: MeteringTestKit;
  let redis: Redis;
  const prefixes: string[] = [];
  // Each test its own: the runs of one are not in another's list.
  let keyPrefix: string;

  beforeAll(() => {
    redis = new Redis(stackConfig.redisUrl);
  });

  beforeEach(() => {
    keyPrefix = uniqueName('redrives');
    prefixes.push(keyPrefix);
  });

  afterEach(async () => {
    await kit?.close();
  });

  afterAll(async () => {
    for (const prefix of prefixes) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
    }
    await redis.quit();
  });

  /** As one API process has it: its own pool on the kit's schema, the shared Redis prefix. */
  const redrivesOn = (pool: Pool, overrides: Partial<Pick<DeadLetterRedrivesOptions, 'clock' | 'keep' | 'idleTimeoutMs' | 'kafka' | 'redis' | 'logger' | 'cancelCheckMs'>> = {}) =>
    createDeadLetterRedrives({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrives') },
      dlqTopic: kit.dlqTopic,
      usageTopic: kit.topic,
      redis,
      keyPrefix,
      deadLetters: createDeadLetterLog({ redis, keyPrefix }),
      pool,
      logger: kit.logger,
      ...overrides,
    });

  /** The test's kit (closed after it), its consumer having dead-lettered one undecodable message of `customer`. */
  async function kitWithOneDeadLetter(customer: string): Promise<void> {
    kit = await createMeteringTestKit();
    await kit.produce([{ key: customer, value: Buffer.from('{"not": "usage"') }]);
    await consumed(await kit.startConsumer(), 1);
    await kit.readTopic(kit.dlqTopic, 1);
  }

  const finished = (redrives: DeadLetterRedrives, id: string) =>
    waitFor(
      async () => {
        const run = await redrives.get(id);
        return run.status === 'running' ? undefined : run;
      },
      { description: `send-back ${id} to finish`, timeoutMs: 90_000 },
    );

  it('sends the chosen letters back in the background, one run at a time across processes, and keeps what each did', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    await kit.registryStore.registerBalance({ id: 'dave-api', customerId: 'dave', productId: 'api' });
    await kit.produce([
      { key: 'dave', value: kit.avro(usage('d1', 'dave')) },
      { key: 'dave', value: Buffer.from('{"not": "usage"') },
      { key: 'dave', value: kit.avro(usage('d2', 'dave')) },
    ]);
    const consumer = await kit.startConsumer({ balanceOpenWaitMs: 1000, maxBackoffMs: 200 });
    await consumed(consumer, 3);
    // The dead-letter log, as an API process fills it from the topic (one partition).
    const log = createDeadLetterLog({ redis, keyPrefix });
    await log.record((await kit.readTopic(kit.dlqTopic, 3)).map((letter) => deadLetterRecordOf(0, letter)));
    const sentBack = async () =>
      // By code: the consumer dead-letters the undecodable one at once, the others after waiting for their balance.
      (await log.recent(10)).map((letter) => [letter.errorCode, letter.sentBackAt]).sort(([a], [b]) => String(a).localeCompare(String(b)));
    const dave = await kit.openBalance('dave', 'api', '10');
    const first = redrivesOn(kit.db.pool);
    const second = redrivesOn(kit.db.anotherPool(2));

    // A dry run counts, and is recorded as one.
    const dry = await first.start({ errorCodes: 'all', dryRun: true, requestedBy: operator });
    expect(dry).toMatchObject({ status: 'running', dryRun: true, errorCodes: 'all', since: null, requestedBy: operator, finishedAt: null, error: null });
    expect(await finished(second, dry.id)).toMatchObject({
      status: 'succeeded',
      result: { read: 3, republished: 3, republishedByErrorCode: { balance_not_opened: 2, undecodable_usage_event: 1 } },
    });
    expect(await kit.balanceOf(dave)).toBe('10');
    // Counted, not sent: the log says none was sent back.
    expect(await sentBack()).toEqual([
      ['balance_not_opened', null],
      ['balance_not_opened', null],
      ['undecodable_usage_event', null],
    ]);

    // While `tally redrive` (or another API process) holds the lease, no run starts anywhere.
    const cli = await tryAcquireAdvisoryLease({ pool: kit.db.anotherPool(1), name: REDRIVE_LEASE_NAME });
    expect(cli).toBeDefined();
    await expect(second.start({ errorCodes: ['balance_not_opened'], requestedBy: operator })).rejects.toBeInstanceOf(RedriveRunningError);
    await cli!.release();

    const sent = await second.start({ errorCodes: ['balance_not_opened'], requestedBy: null });
    // The other process answers for it as well: the record is shared.
    const done = await finished(first, sent.id);
    expect(done).toMatchObject({
      status: 'succeeded',
      requestedBy: null,
      errorCodes: ['balance_not_opened'],
      result: { read: 3, republished: 2, republishedByErrorCode: { balance_not_opened: 2 }, skipped: { not_selected: 1, raw_batch: 0, cut: 0, other_source: 0 } },
      error: null,
    });
    expect(Date.parse(done.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(done.startedAt));
    // The log tells the letters sent back from the one left, each marked during the run.
    const marks = await sentBack();
    expect(marks.map(([code, at]) => [code, at !== null])).toEqual([
      ['balance_not_opened', true],
      ['balance_not_opened', true],
      ['undecodable_usage_event', false],
    ]);
    for (const [, at] of marks.filter(([, at]) => at !== null)) {
      expect(Date.parse(at!)).toBeGreaterThanOrEqual(Date.parse(done.startedAt));
      expect(Date.parse(at!)).toBeLessThanOrEqual(Date.parse(done.finishedAt!));
    }
    await consumed(consumer, 5);
    expect(await kit.balanceOf(dave)).toBe('8');
    expect((await first.list(10)).map((run) => run.id)).toEqual([sent.id, dry.id]);
    // Each process counts what it ran, for its metrics; a dry run sends nothing.
    expect(second.counters()).toEqual({ sentBackByErrorCode: { balance_not_opened: 2 }, endedByStatus: { succeeded: 1, failed: 0, interrupted: 0, cancelled: 0 }, running: 0 });
    expect(first.counters()).toMatchObject({ sentBackByErrorCode: {}, endedByStatus: { succeeded: 1 } });

    // Letters dead-lettered before `since` stay.
    const later = await first.start({ errorCodes: 'all', since: new Date(Date.now() + 60_000), requestedBy: operator });
    expect(await finished(first, later.id)).toMatchObject({ status: 'succeeded', result: { read: 3, republished: 0, skipped: { not_selected: 3 } } });
    await expect(first.get('00000000-0000-0000-0000-000000000000')).rejects.toBeInstanceOf(RedriveNotFoundError);
  });

  it('records a run its process stopped as interrupted, frees the lease, and says so of a run whose process died', async () => {
    await kitWithOneDeadLetter('erin');
    const redrives = redrivesOn(kit.db.pool);

    // Stopped right after it started: the read has not yet joined its group.
    const started = await redrives.start({ errorCodes: 'all', requestedBy: operator });
    await redrives.stop();
    expect(await redrives.get(started.id)).toMatchObject({ status: 'interrupted', error: 'the process is stopping' });
    const next = await redrives.start({ errorCodes: 'all', dryRun: true, requestedBy: operator });
    expect(await finished(redrives, next.id)).toMatchObject({ status: 'succeeded', result: { read: 1 } });

    // What a killed process leaves: a record still running, no longer kept alive.
    const abandoned: RedriveRun & { aliveAt: number } = { ...next, id: '11111111-1111-1111-1111-111111111111', status: 'running', finishedAt: null, aliveAt: Date.now() - 60_000 };
    await redis.multi().set(`${keyPrefix}:redrive:${abandoned.id}`, JSON.stringify(abandoned)).zadd(`${keyPrefix}:redrives`, Date.now(), abandoned.id).exec();
    expect(await redrives.get(abandoned.id)).toMatchObject({ status: 'interrupted', error: 'its process stopped before the end' });
  });

  it('honours a stop asked while the run is still beginning (a Ctrl-C at once): recorded interrupted, nothing read', async () => {
    await kitWithOneDeadLetter('ivy');
    const redrives = redrivesOn(kit.db.pool);
    const ending = redrives.runToEnd({ errorCodes: 'all', dryRun: true, requestedBy: null, via: 'cli' });
    // Before the lease and the run's record are written: nothing runs yet to stop.
    await redrives.stop();
    expect(await ending).toMatchObject({ status: 'interrupted', error: 'the process is stopping', result: { read: 0 } });
    // A stop is for what runs or begins then: the next run goes to its end.
    expect(await redrives.runToEnd({ errorCodes: 'all', dryRun: true, requestedBy: null, via: 'cli' })).toMatchObject({ status: 'succeeded', result: { read: 1 } });
  });

  /** A run whose fetches `proxy` swallows, once it has ended, as `redrives` reads it. */
  const endedBehind = (proxy: KafkaProxy, redrives: DeadLetterRedrives, id: string) =>
    waitCuttingConnections(
      proxy,
      async () => {
        const run = await redrives.get(id);
        return run.status === 'running' ? undefined : run;
      },
      { description: 'the run to stop', timeoutMs: 90_000 },
    );

  it('stops a run when any process asks, records who stopped it, and frees the lease', async () => {
    await kitWithOneDeadLetter('fay');
    // The runner reaches Kafka through a proxy that swallows its fetches: its read of the
    // dead-letter topic waits for ever, until the run is stopped.
    const proxy = await startKafkaProxy(stackConfig.kafkaBrokers[0]!);
    try {
      proxy.swallow([FETCH]);
      const runner = redrivesOn(kit.db.pool, { idleTimeoutMs: 170_000, kafka: { brokers: [proxy.broker], clientId: uniqueName('redrives-stalled') } });
      const other = redrivesOn(kit.db.anotherPool(2));

      // Asked of another process: recorded at once, noticed by the runner through Redis.
      const first = await runner.start({ errorCodes: 'all', requestedBy: operator });
      await waitFor(() => proxy.swallowedCount() > 0, { description: 'the run to wait on a fetch' });
      expect([runner.counters().running, other.counters().running]).toEqual([1, 0]);
      const asked = await other.cancel(first.id, oncall);
      expect(asked).toMatchObject({ id: first.id, status: 'running', cancelRequestedBy: oncall, finishedAt: null });
      expect(Date.parse(asked.cancelRequestedAt!)).not.toBeNaN();
      const stopped = await endedBehind(proxy, other, first.id);
      expect(stopped).toMatchObject({ status: 'cancelled', cancelRequestedBy: oncall, error: null, result: { read: 0, republished: 0 } });
      expect(stopped.finishedAt).not.toBeNull();
      expect((await runner.list(10))[0]).toEqual(stopped);
      await expect(other.cancel(first.id, operator)).rejects.toBeInstanceOf(RedriveNotRunningError);

      // Asked of its own process: answered once it has stopped.
      proxy.swallow([]);
      const second = await runner.start({ errorCodes: 'all', dryRun: true, requestedBy: operator });
      const own = await runner.cancel(second.id, operator);
      expect(own).toMatchObject({ status: 'cancelled', cancelRequestedBy: operator, dryRun: true, error: null });
      await expect(runner.cancel('00000000-0000-0000-0000-000000000000', operator)).rejects.toBeInstanceOf(RedriveNotFoundError);
      expect(runner.counters()).toMatchObject({ endedByStatus: { cancelled: 2, succeeded: 0 }, running: 0 });

      // Nothing holds the lease any more.
      const lease = await tryAcquireAdvisoryLease({ pool: kit.db.anotherPool(1), name: REDRIVE_LEASE_NAME });
      expect(lease).toBeDefined();
      await lease!.release();
    } finally {
      await proxy.close();
    }
  });

  it('tells a Redis outage during a run once, and hears a cancellation once Redis answers again', async () => {
    await kitWithOneDeadLetter('gus');
    const kafkaProxy = await startKafkaProxy(stackConfig.kafkaBrokers[0]!);
    // The runner's Redis is reached through a proxy that can drop what the runner sends: its
    // commands then time out, as against a Redis that does not answer. Counting the dropped
    // cancellation checks tells the test how many failed.
    let dropping = false;
    let droppedChecks = 0;
    const redisAddress = new URL(stackConfig.redisUrl);
    const redisProxy = await startTcpProxy(Number(redisAddress.port || 6379), redisAddress.hostname, {
      intercept: () => ({
        toServer: new Transform({
          transform(chunk: Buffer, _encoding, done) {
            if (!dropping) return done(null, chunk);
            droppedChecks += chunk.toString('latin1').split(':cancel').length - 1;
            done();
          },
        }),
        toClient: new PassThrough(),
      }),
    });
    const runnerRedis = new Redis(`redis://127.0.0.1:${redisProxy.port}${redisAddress.pathname}`, { commandTimeout: 200 });
    const { logger, lines } = capturedLog('info');
    const told = (message: string) => lines.map((line) => JSON.parse(line) as { msg: string }).filter(({ msg }) => msg.startsWith(message)).length;
    try {
      kafkaProxy.swallow([FETCH]);
      const runner = redrivesOn(kit.db.pool, {
        redis: runnerRedis,
        logger,
        cancelCheckMs: 50,
        idleTimeoutMs: 170_000,
        kafka: { brokers: [kafkaProxy.broker], clientId: uniqueName('redrives-outage') },
      });
      const other = redrivesOn(kit.db.anotherPool(2));
      const started = await runner.start({ errorCodes: 'all', requestedBy: operator });
      await waitFor(() => kafkaProxy.swallowedCount() > 0, { description: 'the run to wait on a fetch' });

      // A loaded machine can stall a check past its timeout before the drop or after it: that is
      // an outage of its own, told like any other. So the test counts what the drop adds.
      const toldBefore = told('cannot look for a cancellation');
      dropping = true;
      await waitFor(() => droppedChecks >= 5, { description: 'five cancellation checks to go unanswered' });
      expect(told('cannot look for a cancellation') - toldBefore).toBeLessThanOrEqual(1);
      expect(told('cannot look for a cancellation')).toBe(told('looking for a cancellation of a dead-letter send-back again') + 1);
      // Redis answers again; a new connection, since the one the commands were dropped from
      // would pair later replies with the dropped commands.
      dropping = false;
      redisProxy.down();
      redisProxy.resume();
      await other.cancel(started.id, oncall);
      const stopped = await endedBehind(kafkaProxy, other, started.id);
      expect(stopped).toMatchObject({ status: 'cancelled', cancelRequestedBy: oncall });
      expect(told('looking for a cancellation of a dead-letter send-back again')).toBe(told('cannot look for a cancellation'));
    } finally {
      runnerRedis.disconnect();
      await redisProxy.close();
      await kafkaProxy.close();
    }
  });

  it('runs to the end in the foreground for tally redrive, recorded as the shell\'s', async () => {
    await kitWithOneDeadLetter('hal');
    const redrives = redrivesOn(kit.db.pool);
    const ended = await redrives.runToEnd({ errorCodes: 'all', dryRun: true, requestedBy: null, via: 'cli' });
    expect(ended).toMatchObject({ status: 'succeeded', via: 'cli', letters: null, requestedBy: null, dryRun: true, error: null, result: { read: 1, republished: 1 } });
    expect(ended.finishedAt).not.toBeNull();
    expect(await redrives.list(1)).toEqual([ended]);
    // The API's runs say so; so do those recorded before runs said where they came from (and
    // before letters could be picked: chosen by code, null).
    const started = await redrives.start({ errorCodes: 'all', dryRun: true, requestedBy: operator });
    expect(started.via).toBe('api');
    const { via: _via, letters: _letters, ...older } = JSON.parse((await redis.get(`${keyPrefix}:redrive:${ended.id}`))!) as Record<string, unknown>;
    await redis.set(`${keyPrefix}:redrive:${ended.id}`, JSON.stringify(older));
    expect(await redrives.get(ended.id)).toMatchObject({ via: 'api', letters: null });
    await finished(redrives, started.id);
    // Refused as start() is while another runs.
    const other = redrivesOn(kit.db.anotherPool(1));
    const holding = await other.start({ errorCodes: 'all', requestedBy: operator });
    await expect(redrives.runToEnd({ errorCodes: 'all', requestedBy: null, via: 'cli' })).rejects.toBeInstanceOf(RedriveRunningError);
    await finished(other, holding.id);
  });

  it('keeps the newest runs only', async () => {
    kit = await createMeteringTestKit();
    const redrives = redrivesOn(kit.db.pool, { keep: 2 });
    const ids: string[] = [];
    for (let index = 0; index < 3; index += 1) {
      const run = await redrives.start({ errorCodes: 'all', dryRun: true, requestedBy: operator });
      await finished(redrives, run.id);
      ids.push(run.id);
    }
    expect((await redrives.list(10)).map((run) => run.id)).toEqual([ids[2], ids[1]]);
    await expect(redrives.get(ids[0]!)).rejects.toBeInstanceOf(RedriveNotFoundError);
  });
});
