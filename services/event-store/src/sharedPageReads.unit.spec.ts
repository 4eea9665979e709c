import pino from 'pino';
import { waitFor } from '@tally/test-support';
import type { RecordedEvent } from './eventStore';
import { sharedPageReads } from './sharedPageReads';
import { startSubscription, type SubscriptionSource } from './startSubscription';

function makeEvent(position: bigint): RecordedEvent {
  return { id: `event-${position}`, type: 'Tested', streamId: 's', revision: position - 1n, position, data: {}, metadata: {}, recordedAt: new Date(0) };
}

/** A log whose reads answer when the test releases them (or at once, when `held` is false). */
class HeldSource implements SubscriptionSource {
  readonly log: RecordedEvent[] = [];
  readonly reads: { after: bigint; maxCount: number; release: () => void; fail: (error: Error) => void }[] = [];
  held = true;
  private readonly wakers = new Set<() => void>();

  append(count: number): void {
    for (let i = 0; i < count; i += 1) this.log.push(makeEvent(BigInt(this.log.length + 1)));
    for (const wake of this.wakers) wake();
  }

  readAll(after: bigint, maxCount: number): Promise<RecordedEvent[]> {
    // The page is taken when the read is sent, as a query's snapshot is.
    const page = this.log.filter((e) => e.position > after).slice(0, maxCount);
    if (!this.held) {
      this.reads.push({ after, maxCount, release: () => undefined, fail: () => undefined });
      return Promise.resolve(page);
    }
    return new Promise((resolve, reject) => {
      this.reads.push({ after, maxCount, release: () => resolve(page), fail: reject });
    });
  }

  async ensureListening(): Promise<void> {}

  onAppended(wake: () => void): () => void {
    this.wakers.add(wake);
    return () => this.wakers.delete(wake);
  }
}

const ids = (events: readonly RecordedEvent[]): string[] => events.map((e) => e.id);

describe('sharedPageReads', () => {
  it('serves reads from the same position, sent with no announcement between, with one read', async () => {
    const source = new HeldSource();
    source.append(3);
    const shared = sharedPageReads(source);
    const first = shared.readAll(0n, 10);
    const second = shared.readAll(0n, 10);
    expect(source.reads).toHaveLength(1);
    source.reads[0]!.release();
    const [a, b] = await Promise.all([first, second]);
    expect(ids(a)).toEqual(['event-1', 'event-2', 'event-3']);
    expect(b).toEqual(a);
    // Each caller has its own array.
    expect(b).not.toBe(a);
  });

  it('gives a joiner asking for fewer events the first of the page', async () => {
    const source = new HeldSource();
    source.append(3);
    const shared = sharedPageReads(source);
    const whole = shared.readAll(0n, 10);
    const part = shared.readAll(0n, 2);
    source.reads[0]!.release();
    expect(ids(await part)).toEqual(['event-1', 'event-2']);
    expect(await whole).toHaveLength(3);
    expect(source.reads).toHaveLength(1);
  });

  it('reads anew after an announcement, from another position, for more events, or once the read is done', async () => {
    const source = new HeldSource();
    source.append(2);
    const shared = sharedPageReads(source);
    const before = shared.readAll(0n, 10);
    source.append(1);
    // Announced after the first read was sent: that read may not see event 3.
    const after = shared.readAll(0n, 10);
    const elsewhere = shared.readAll(1n, 10);
    const more = shared.readAll(0n, 20);
    expect(source.reads.map((read) => [read.after, read.maxCount])).toEqual([
      [0n, 10],
      [0n, 10],
      [1n, 10],
      [0n, 20],
    ]);
    for (const read of source.reads) read.release();
    expect(ids(await before)).toEqual(['event-1', 'event-2']);
    expect(ids(await after)).toEqual(['event-1', 'event-2', 'event-3']);
    expect(ids(await elsewhere)).toEqual(['event-2', 'event-3']);
    expect(await more).toHaveLength(3);

    const later = shared.readAll(0n, 10);
    expect(source.reads).toHaveLength(5);
    source.reads[4]!.release();
    expect(await later).toHaveLength(3);
  });

  it('fails every caller of a failed read, and the next read is sent again', async () => {
    const source = new HeldSource();
    source.append(1);
    const shared = sharedPageReads(source);
    const first = shared.readAll(0n, 10);
    const second = shared.readAll(0n, 10);
    source.reads[0]!.fail(new Error('connection lost'));
    await expect(first).rejects.toThrow('connection lost');
    await expect(second).rejects.toThrow('connection lost');
    const retried = shared.readAll(0n, 10);
    expect(source.reads).toHaveLength(2);
    source.reads[1]!.release();
    expect(ids(await retried)).toEqual(['event-1']);
  });

  it('delivers every event to each of several subscriptions once and in order, with fewer reads than apart', async () => {
    const source = new HeldSource();
    source.held = false;
    const shared = sharedPageReads(source);
    const logger = pino({ level: 'silent' });
    const timing = { pollIntervalMs: 60_000, retryInitialDelayMs: 1, retryMaxDelayMs: 5 };
    const received: bigint[][] = [[], [], []];
    const subscriptions = received.map((into) =>
      startSubscription(shared, timing, { batchSize: 4, onEvents: async (events) => void into.push(...events.map((e) => e.position)) }, logger),
    );
    const waitUntilAll = (count: number): Promise<boolean> =>
      waitFor(() => received.every((into) => into.length >= count), { description: `${count} events delivered to each`, timeoutMs: 5000, intervalMs: 2 });
    await waitUntilAll(0);
    const appends = [1, 3, 9, 2, 1];
    let total = 0;
    for (const count of appends) {
      source.append(count);
      total += count;
      await waitUntilAll(total);
    }
    await Promise.all(subscriptions.map((subscription) => subscription.stop()));

    const expected = Array.from({ length: total }, (_, i) => BigInt(i + 1));
    for (const into of received) expect(into).toEqual(expected);
    // Apart, each subscription reads once at its start, then for each append at least once and
    // at least once per page of 4 it brought.
    const apart = received.length * (1 + appends.reduce((sum, count) => sum + Math.max(1, Math.ceil(count / 4)), 0));
    expect(source.reads.length).toBeLessThan(apart);
  });
});
