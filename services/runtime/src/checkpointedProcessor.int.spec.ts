import { randomUUID } from 'node:crypto';
import {
  createPostgresEventStore,
  EventStoreStreamDeletedError,
  EventStoreUnavailableError,
  StreamRevisionMismatchError,
  type EventStore,
  type RecordedEvent,
  type SubscribeToAllOptions,
} from '@tally/event-store';
import { createMetricsRegistry } from '@tally/metrics';
import { capturedLog, createTestSchema, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { createCheckpointedProcessor, type CheckpointedProcessor, type CheckpointedProcessorOptions } from './checkpointedProcessor';
import { createPostgresCheckpointStore, type CheckpointStore } from './checkpointStore';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const fastRetry = { initialDelayMs: 5, maxDelayMs: 20 };

describe('checkpointed processor on PostgreSQL', () => {
  let db: TestSchema;
  let store: EventStore;
  let checkpoints: CheckpointStore;
  const running: CheckpointedProcessor[] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'checkpointed_processor' });
    store = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 200 });
    checkpoints = createPostgresCheckpointStore(db.pool);
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((processor) => processor.stop()));
  });

  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  function processor(options: Partial<CheckpointedProcessorOptions<RecordedEvent>> & Pick<CheckpointedProcessorOptions<RecordedEvent>, 'name' | 'handle'>): CheckpointedProcessor {
    const created = createCheckpointedProcessor({ eventStore: store, checkpoints, logger, what: 'handling test events', retry: fastRetry, batchSize: 4, ...options });
    running.push(created);
    return created;
  }

  /** Appends `count` events to a stream of the test's own; returns their positions. */
  async function append(count: number): Promise<bigint[]> {
    const stream = `processor-test-${randomUUID()}`;
    await store.appendToStream(
      stream,
      Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'ProcessorTested', data: { i } })),
      { expectedRevision: 'no_stream' },
    );
    return (await store.readStream(stream)).map((event) => event.position);
  }

  it('handles every event once, in order, and resumes after a restart from the saved checkpoint', async () => {
    const name = uniqueName('resume');
    const positions = await append(10);
    // Earlier events of other tests in this schema: start past them.
    await checkpoints.save(name, positions[0]! - 1n);
    const handled: RecordedEvent[] = [];
    const first = processor({ name, handle: async (events) => void handled.push(...events) });
    await first.start();
    expect(first.isLeading()).toBe(true);
    await waitFor(() => first.checkpoint() === positions[9], { description: 'the first ten events handled' });
    expect(await checkpoints.load(name)).toBe(positions[9]);
    await first.stop();

    const more = await append(5);
    const second = processor({ name, handle: async (events) => void handled.push(...events) });
    await second.start();
    await waitFor(() => second.checkpoint() === more[4], { description: 'the next five events handled' });
    expect(handled.map((event) => event.position)).toEqual([...positions, ...more]);
    expect(second.lag().events).toBe(0);
  });

  it('retries a failing handler with the same batch and moves the checkpoint only after it succeeds', async () => {
    const name = uniqueName('retry');
    const positions = await append(3);
    await checkpoints.save(name, positions[0]! - 1n);
    const attempts: bigint[][] = [];
    const checkpointsSeen: bigint[] = [];
    const handled = processor({
      name,
      handle: async (events) => {
        attempts.push(events.map((event) => event.position));
        // What the store holds while the handler runs: never past what was handled before.
        checkpointsSeen.push(await checkpoints.load(name));
        if (attempts.length < 3) throw Object.assign(new Error('redis away'), { retriable: true });
      },
    });
    await handled.start();
    await waitFor(async () => (await checkpoints.load(name)) === positions[2], { description: 'the batch handled after two failures' });
    expect(attempts).toEqual([positions, positions, positions]);
    expect(checkpointsSeen).toEqual([positions[0]! - 1n, positions[0]! - 1n, positions[0]! - 1n]);
  });

  it('starts again from what load() then finds when the handler asks, neither saving nor moving past the batch', async () => {
    const name = uniqueName('restart');
    const positions = await append(3);
    await checkpoints.save(name, positions[0]! - 1n);
    const loads: bigint[] = [];
    // A store whose checkpoint was taken back under the processor (a projection restored from an older copy).
    const rewinding: CheckpointStore = {
      load: async (loaded) => {
        const position = await checkpoints.load(loaded);
        loads.push(position);
        return position;
      },
      save: (saved, position) => checkpoints.save(saved, position),
    };
    const handled: bigint[][] = [];
    const restarting = processor({
      name,
      checkpoints: rewinding,
      handle: async (events) => {
        handled.push(events.map((event) => event.position));
        return handled.length === 1 ? { restart: 'the store was reset' } : undefined;
      },
    });
    await restarting.start();
    await waitFor(() => restarting.checkpoint() === positions[2], { description: 'the batch handled after the restart' });
    expect(loads).toEqual([positions[0]! - 1n, positions[0]! - 1n]);
    expect(handled).toEqual([positions, positions]);
  });

  describe('stopped while a batch is handled', () => {
    /** A store whose saves fail, once the stop is asked for, `failures` times (a PostgreSQL blip). */
    function blipping(failures: number): { store: CheckpointStore; stopping(): void; attempts: () => number } {
      let stopping = false;
      let attempts = 0;
      return {
        store: {
          load: (loaded) => checkpoints.load(loaded),
          save: async (saved, position) => {
            if (stopping) attempts += 1;
            if (stopping && attempts <= failures) throw Object.assign(new Error('Connection terminated unexpectedly'), { retriable: true });
            return checkpoints.save(saved, position);
          },
        },
        stopping: () => void (stopping = true),
        attempts: () => attempts,
      };
    }

    /** A processor whose handler, at its first batch, finishes only once the stop has aborted it. */
    async function stoppedMidBatch(failures: number) {
      const name = uniqueName('stop_save');
      const positions = await append(3);
      await checkpoints.save(name, positions[0]! - 1n);
      const saves = blipping(failures);
      let handled: bigint | undefined;
      let started = false;
      const stopped = processor({
        name,
        checkpoints: saves.store,
        handle: async (events, signal) => {
          started = true;
          // The handler's work is done when the stop comes (a relay's batch acknowledged): it returns, not throws.
          await new Promise((resolve) => (signal.aborted ? resolve(undefined) : signal.addEventListener('abort', resolve, { once: true })));
          handled ??= events[events.length - 1]!.position;
        },
      });
      await stopped.start();
      await waitFor(() => started, { description: 'the first batch being handled' });
      saves.stopping();
      const since = Date.now();
      await stopped.stop();
      return { name, handled: () => handled, attempts: saves.attempts, stopMs: Date.now() - since, checkpointBefore: positions[0]! - 1n };
    }

    it('saves the checkpoint of the batch it finished, though the first save fails', async () => {
      const { name, handled, attempts } = await stoppedMidBatch(1);
      expect(handled()).toBeDefined();
      expect(attempts()).toBe(2);
      // Saved: the next holder starts after the batch and hands nothing over again.
      expect(await checkpoints.load(name)).toBe(handled());
    });

    it('gives the save a bounded window, and stops with the checkpoint before the batch when it fails throughout', async () => {
      const { name, attempts, stopMs, checkpointBefore } = await stoppedMidBatch(Number.POSITIVE_INFINITY);
      expect(attempts()).toBeGreaterThan(1);
      // The window (2 s) and the attempt and backoff in flight, well within TALLY_SHUTDOWN_TIMEOUT_MS's default of 15 s.
      expect(stopMs).toBeLessThan(5_000);
      expect(await checkpoints.load(name)).toBe(checkpointBefore);
    });
  });

  it('reports its lag through the metrics registry', async () => {
    const name = uniqueName('lag');
    const positions = await append(6);
    await checkpoints.save(name, positions[0]! - 1n);
    const registry = createMetricsRegistry();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const lagging = processor({
      name,
      // Holds the first batch until the test has read the lag.
      handle: () => gate,
      metrics: {
        registry,
        lagEvents: { name: 'test_processor_lag_events', help: 'positions behind' },
        lagSeconds: { name: 'test_processor_lag_seconds', help: 'age of the oldest unhandled event' },
        leading: { name: 'test_processor_leading', help: '1 while leading' },
      },
    });
    await lagging.start();
    const behind = Number(positions[5]! - positions[0]! + 1n);
    await waitFor(async () => (await registry.render()).includes(`test_processor_lag_events ${behind}`), { description: 'the lag gauge' });
    expect(await registry.render()).toContain('test_processor_leading 1');
    release();
    await waitFor(() => lagging.checkpoint() === positions[5], { description: 'caught up' });
    expect(await registry.render()).toContain('test_processor_lag_events 0');
    expect(await registry.render()).toContain('test_processor_lag_seconds 0');
  });

  /** The processor's failure as its worker reports it (Worker.onFailure), once. */
  function failureOf(worker: CheckpointedProcessor): () => unknown {
    let failure: unknown;
    worker.onFailure((error) => (failure = error));
    return () => failure;
  }

  /**
   * The store, but every read of its subscription fails with `error`, reported through onError
   * and tried again, as the stores' subscriptions do: an EventStoreDB store with a deleted stream
   * or a journal entry it cannot apply.
   */
  function unreadable(error: Error): { store: EventStore; reports: () => number } {
    let reports = 0;
    const subscribeToAll = (options: SubscribeToAllOptions) => {
      const timer = setInterval(() => {
        reports += 1;
        options.onError?.(error);
      }, 20);
      return { stop: async () => clearInterval(timer) };
    };
    return { store: { ...store, subscribeToAll }, reports: () => reports };
  }

  // No isTransient passed: the default rule is what every processor but the projector relies on.
  describe('without an isTransient of its own', () => {
    it.each([
      ['EventStoreStreamDeletedError', new EventStoreStreamDeletedError('creditBalance-deleted')],
      ['StreamRevisionMismatchError', new StreamRevisionMismatchError('creditBalance-recreated', 3n, 5n)],
    ])('fails, once at error level, on a %s (not retriable) its store reports of every read, instead of retrying for ever', async (_name, error) => {
      const { logger: captured, lines } = capturedLog('error');
      const failing = processor({ name: uniqueName('unreadable'), eventStore: unreadable(error).store, logger: captured, handle: async () => undefined });
      const failure = failureOf(failing);
      await failing.start();

      await waitFor(() => failure() !== undefined, { description: 'the processor to fail', timeoutMs: 20_000 });
      expect(failure()).toBe(error);
      expect(failing.state()).toBe('failed');
      expect(lines.filter((line) => line.includes(`"code":"${error.code}"`))).toHaveLength(1);
    });

    it('fails when its store cannot tell the head of its log as it starts, saying so', async () => {
      const error = new StreamRevisionMismatchError('creditBalance-recreated', 3n, 5n);
      const { logger: captured, lines } = capturedLog('error');
      const failing = processor({ name: uniqueName('no_head'), eventStore: { ...store, headPosition: () => Promise.reject(error) }, logger: captured, handle: async () => undefined });
      const failure = failureOf(failing);
      await failing.start();

      await waitFor(() => failure() !== undefined, { description: 'the processor to fail', timeoutMs: 20_000 });
      expect(failure()).toBe(error);
      expect(lines.filter((line) => line.includes('reading the head of the event store failed and cannot succeed by retrying'))).toHaveLength(1);
    });

    it('fails when its checkpoint cannot be loaded as it starts, naming the checkpoint, not the event store', async () => {
      const error = new StreamRevisionMismatchError('creditBalance-recreated', 3n, 5n);
      const { logger: captured, lines } = capturedLog('error');
      const failing = processor({
        name: uniqueName('no_checkpoint'),
        checkpoints: { ...checkpoints, load: () => Promise.reject(error) },
        logger: captured,
        handle: async () => undefined,
      });
      const failure = failureOf(failing);
      await failing.start();

      await waitFor(() => failure() !== undefined, { description: 'the processor to fail', timeoutMs: 20_000 });
      expect(failure()).toBe(error);
      expect(lines.filter((line) => line.includes('loading the checkpoint failed and cannot succeed by retrying'))).toHaveLength(1);
    });

    it('fails on a not retriable error of its handler, the checkpoint before the batch', async () => {
      const name = uniqueName('handler_refuses');
      const positions = await append(2);
      await checkpoints.save(name, positions[0]! - 1n);
      const error = new EventStoreStreamDeletedError('creditBalance-deleted');
      let attempts = 0;
      const failing = processor({
        name,
        handle: async () => {
          attempts += 1;
          throw error;
        },
      });
      const failure = failureOf(failing);
      await failing.start();

      await waitFor(() => failure() !== undefined, { description: 'the processor to fail', timeoutMs: 20_000 });
      expect(failure()).toBe(error);
      expect(attempts).toBe(1);
      expect(await checkpoints.load(name)).toBe(positions[0]! - 1n);
    });

    it.each([
      ['a retriable store error', new EventStoreUnavailableError(new Error('connection refused'))],
      ['an error Tally does not name', new Error('something unforeseen')],
    ])('retries %s, of its reads and of its handler, and keeps running', async (_name, error) => {
      const { store: failingReads, reports } = unreadable(error);
      const reading = processor({ name: uniqueName('read_retried'), eventStore: failingReads, handle: async () => undefined });
      const readFailure = failureOf(reading);
      await reading.start();
      await waitFor(() => reports() >= 10 || readFailure() !== undefined, { description: 'ten failed reads reported' });
      expect(readFailure()).toBeUndefined();

      const name = uniqueName('handler_retried');
      const positions = await append(2);
      await checkpoints.save(name, positions[0]! - 1n);
      let attempts = 0;
      const handling = processor({
        name,
        handle: async () => {
          attempts += 1;
          if (attempts < 3) throw error;
        },
      });
      const handlerFailure = failureOf(handling);
      await handling.start();
      await waitFor(() => handling.checkpoint() === positions[1] || handlerFailure() !== undefined, { description: 'the batch handled after two failures' });
      expect(handlerFailure()).toBeUndefined();
      expect(attempts).toBe(3);
    });
  });

  it('with a lease, one of two processors works and the other takes over from its checkpoint', async () => {
    const name = uniqueName('lease');
    const positions = await append(4);
    await checkpoints.save(name, positions[0]! - 1n);
    const handledBy = new Map<string, bigint[]>([
      ['a', []],
      ['b', []],
    ]);
    const leased = (id: string, pool = db.pool) =>
      processor({
        name,
        handle: async (events) => void handledBy.get(id)!.push(...events.map((event) => event.position)),
        lease: { pool, standbyPollMs: 50, heartbeatMs: 100 },
      });
    const a = leased('a');
    await a.start();
    const b = leased('b', db.anotherPool(2));
    await b.start();
    await waitFor(() => a.checkpoint() === positions[3], { description: 'the leader handled the first events' });
    expect(a.isLeading()).toBe(true);
    expect(b.isLeading()).toBe(false);

    await a.stop();
    await waitFor(() => b.isLeading(), { description: 'the standby took the lease over' });
    const more = await append(3);
    await waitFor(() => b.checkpoint() === more[2], { description: 'the new leader handled the next events' });
    expect(handledBy.get('a')).toEqual(positions);
    // From the checkpoint the first one left: nothing again, nothing skipped.
    expect(handledBy.get('b')).toEqual(more);
  });
});
