import pino from 'pino';
import { waitFor } from '@tally/test-support';
import type { RecordedEvent } from './eventStore';
import { startSubscription, type SubscriptionSource } from './startSubscription';

const logger = pino({ level: 'silent' });
/** The loop runs on timers and promises: poll its observable effects briefly, with a deadline. */
function until(condition: () => boolean): Promise<boolean> {
  return waitFor(condition, { description: condition.toString(), timeoutMs: 5000, intervalMs: 2 });
}

function makeEvent(position: bigint): RecordedEvent {
  return {
    id: `event-${position}`,
    type: 'Tested',
    streamId: 's',
    revision: position / 10n - 1n,
    position,
    data: {},
    metadata: {},
    recordedAt: new Date(0),
  };
}

const timing = { pollIntervalMs: 60_000, retryInitialDelayMs: 1, retryMaxDelayMs: 5 };

/** An in-memory $all log: appends wake the subscriptions, as NOTIFY does. */
class FakeSource implements SubscriptionSource {
  readonly log: RecordedEvent[] = [];
  readonly reads: { after: bigint; maxCount: number }[] = [];
  failNextReads = 0;
  private readonly wakers = new Set<() => void>();

  append(count: number): void {
    for (let i = 0; i < count; i += 1) {
      // Gaps between positions, as rolled-back appends leave.
      this.log.push(makeEvent(BigInt(this.log.length + 1) * 10n));
    }
    for (const wake of this.wakers) wake();
  }

  async readAll(after: bigint, maxCount: number): Promise<RecordedEvent[]> {
    this.reads.push({ after, maxCount });
    if (this.failNextReads > 0) {
      this.failNextReads -= 1;
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    }
    return this.log.filter((e) => e.position > after).slice(0, maxCount);
  }

  async ensureListening(): Promise<void> {}

  onAppended(wake: () => void): () => void {
    this.wakers.add(wake);
    return () => this.wakers.delete(wake);
  }

  get listeners(): number {
    return this.wakers.size;
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('startSubscription', () => {
  it('pages through the log from the start, reports catching up once, then goes live', async () => {
    const source = new FakeSource();
    source.append(7);
    const batches: bigint[][] = [];
    const caughtUp: bigint[] = [];
    const subscription = startSubscription(
      source,
      timing,
      {
        batchSize: 3,
        onEvents: async (events) => {
          batches.push(events.map((e) => e.position));
        },
        onCaughtUp: (position) => caughtUp.push(position),
      },
      logger,
    );
    await until(() => caughtUp.length === 1);
    expect(batches).toEqual([[10n, 20n, 30n], [40n, 50n, 60n], [70n]]);
    expect(caughtUp).toEqual([70n]);

    source.append(2);
    await until(() => batches.length === 4);
    expect(batches[3]).toEqual([80n, 90n]);
    expect(caughtUp).toEqual([70n]);
    await subscription.stop();
    expect(source.listeners).toBe(0);
  });

  it('starts after the checkpoint, exclusive', async () => {
    const source = new FakeSource();
    source.append(5);
    const seen: bigint[] = [];
    const subscription = startSubscription(
      source,
      timing,
      { after: 30n, onEvents: async (events) => void seen.push(...events.map((e) => e.position)) },
      logger,
    );
    await until(() => seen.length === 2);
    expect(seen).toEqual([40n, 50n]);
    expect(source.reads[0]!.after).toBe(30n);
    await subscription.stop();
  });

  it('never runs the handler concurrently, and stop() waits for the handler in flight', async () => {
    const source = new FakeSource();
    source.append(1);
    const release = deferred();
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    let finished = false;
    const subscription = startSubscription(
      source,
      timing,
      {
        batchSize: 1,
        onEvents: async () => {
          calls += 1;
          running += 1;
          maxRunning = Math.max(maxRunning, running);
          source.append(1); // a notification while the handler runs
          await release.promise;
          running -= 1;
          finished = true;
        },
      },
      logger,
    );
    await until(() => calls === 1);
    let stopped = false;
    const stopping = subscription.stop().then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    release.resolve();
    await stopping;
    expect(finished).toBe(true);
    expect(maxRunning).toBe(1);
    expect(calls).toBe(1); // nothing is delivered after stop()
  });

  it('reports read failures and retries from the same checkpoint, skipping nothing', async () => {
    const source = new FakeSource();
    source.append(2);
    source.failNextReads = 3;
    const errors: unknown[] = [];
    const seen: bigint[] = [];
    const subscription = startSubscription(
      source,
      timing,
      {
        onEvents: async (events) => void seen.push(...events.map((e) => e.position)),
        onError: (error) => errors.push(error),
      },
      logger,
    );
    await until(() => seen.length === 2);
    expect(errors).toHaveLength(3);
    expect(seen).toEqual([10n, 20n]);
    expect(source.reads.slice(0, 4).map((r) => r.after)).toEqual([0n, 0n, 0n, 0n]);
    await subscription.stop();
  });

  it('reports and retries when live notifications cannot be set up', async () => {
    const source = new FakeSource();
    source.append(1);
    let listenFailures = 2;
    source.ensureListening = async () => {
      if (listenFailures > 0) {
        listenFailures -= 1;
        throw new Error('Connection terminated unexpectedly');
      }
    };
    const errors: unknown[] = [];
    const seen: bigint[] = [];
    const subscription = startSubscription(
      source,
      timing,
      { onEvents: async (events) => void seen.push(...events.map((e) => e.position)), onError: (e) => errors.push(e) },
      logger,
    );
    await until(() => seen.length === 1);
    expect(errors).toHaveLength(2);
    await subscription.stop();
  });

  it('stops at a handler failure instead of skipping the batch, and reports it', async () => {
    const source = new FakeSource();
    source.append(3);
    const failure = new Error('projection down');
    const errors: unknown[] = [];
    let calls = 0;
    const subscription = startSubscription(
      source,
      timing,
      {
        batchSize: 1,
        onEvents: async () => {
          calls += 1;
          throw failure;
        },
        onError: (error) => errors.push(error),
      },
      logger,
    );
    await until(() => errors.length === 1);
    source.append(1);
    await subscription.stop();
    expect(errors).toEqual([failure]);
    expect(calls).toBe(1);
    expect(source.listeners).toBe(0);
  });

  it('falls back to polling when no notification comes', async () => {
    const source = new FakeSource();
    const seen: bigint[] = [];
    const subscription = startSubscription(
      source,
      { ...timing, pollIntervalMs: 5 },
      { onEvents: async (events) => void seen.push(...events.map((e) => e.position)) },
      logger,
    );
    await until(() => source.reads.length >= 1);
    source.log.push(makeEvent(10n)); // written without waking anyone: a lost NOTIFY
    await until(() => seen.length === 1);
    await subscription.stop();
  });

  it('rejects a batch size that is not a positive integer', () => {
    expect(() => startSubscription(new FakeSource(), timing, { batchSize: 0, onEvents: async () => {} }, logger)).toThrow(
      RangeError,
    );
  });
});
