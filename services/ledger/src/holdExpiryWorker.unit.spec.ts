import { balanceStreamId, HoldNotExpiredError, HoldNotOpenError } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import type { CheckpointStore } from '@tally/runtime';
import { createMetricsRegistry } from '@tally/metrics';
import pino from 'pino';
import type { HoldExpiryIndex } from './holdExpiryIndex';
import { createHoldExpiryWorker, holdIndexChanges } from './holdExpiryWorker';
import type { LedgerService } from './ledgerService';

let position = 0n;
function recorded(streamId: string, type: string, data: Record<string, unknown>): RecordedEvent {
  position += 1n;
  return {
    id: `e-${position}`,
    type,
    streamId,
    revision: position,
    position,
    data: { occurredAt: '2026-03-01T12:00:00.000Z', ...data } as RecordedEvent['data'],
    metadata: {},
    recordedAt: new Date(0),
  };
}

const figures = { balanceAfter: '10', heldAfter: '0' };
const held = (stream: string, holdId: string, expiresAt: string) =>
  recorded(stream, 'CreditsHeld', { holdId, credits: '1', expiresAt, reference: null, ...figures, heldAfter: '1' });

describe('holdIndexChanges', () => {
  const stream = balanceStreamId('b-1');

  it('indexes a placed hold by its expiry and drops it at its capture, release or expiry, last change per hold winning', () => {
    const changes = holdIndexChanges([
      held(stream, 'b-1:a', '2026-03-01T13:00:00.000Z'),
      held(stream, 'b-1:b', '2026-03-01T14:00:00.000Z'),
      recorded(stream, 'CreditConsumed', { credits: '1', source: 'hold', reason: null, usage: null, ...figures }),
      recorded(stream, 'HoldCaptured', { holdId: 'b-1:a', credits: '1', released: '0', ...figures }),
      held(stream, 'b-1:c', '2026-03-01T15:00:00.000Z'),
      recorded(stream, 'HoldReleased', { holdId: 'b-1:c', credits: '1', reason: null, usageEventId: null, ...figures }),
      held(stream, 'b-1:d', '2026-03-01T16:00:00.000Z'),
      recorded(stream, 'HoldExpired', { holdId: 'b-1:d', credits: '1', expiresAt: '2026-03-01T16:00:00.000Z', ...figures }),
    ]);
    expect(changes).toEqual([
      { holdId: 'b-1:a', balanceId: 'b-1', expiresAt: null },
      { holdId: 'b-1:b', balanceId: 'b-1', expiresAt: new Date('2026-03-01T14:00:00.000Z') },
      { holdId: 'b-1:c', balanceId: 'b-1', expiresAt: null },
      { holdId: 'b-1:d', balanceId: 'b-1', expiresAt: null },
    ]);
  });

  it('ignores every other event and every other stream', () => {
    expect(
      holdIndexChanges([
        recorded(stream, 'CreditToppedUp', { credits: '1', source: 'manual', reason: null, purchase: null, grant: null, ...figures }),
        recorded('subscription-s-1', 'CreditsHeld', { holdId: 'x' }),
      ]),
    ).toEqual([]);
  });
});

describe('createHoldExpiryWorker sweep', () => {
  // Fake timers: the sweep's pacing is the point, and no run may wait on a real clock.
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  const logger = pino({ level: 'silent' });
  // Nothing to index: the sweep alone is under test, the index is the in-memory one below.
  const eventStore = { headPosition: async () => 0n, readAll: async () => [], subscribeToAll: () => ({ stop: async () => {} }) };
  const checkpoints: CheckpointStore = { load: async () => 0n, save: async () => {} };
  const POLL_MS = 60_000;
  /** Lets a sweep's chain of awaits finish, and a next sweep "at once" run (a 0 ms timer is 1 ms to fake timers). */
  const settle = async () => {
    for (let i = 0; i < 20; i += 1) await jest.advanceTimersByTimeAsync(1);
  };

  /** An index of rows in memory, as the PostgreSQL one answers them (due oldest first). */
  function memoryIndex(rows: { holdId: string; balanceId: string; expiresAt: Date }[]) {
    const index: HoldExpiryIndex & { dueCalls: number; rows: typeof rows } = {
      rows,
      dueCalls: 0,
      async apply(changes) {
        for (const change of changes) {
          const at = index.rows.findIndex((row) => row.holdId === change.holdId);
          if (change.expiresAt === null && at >= 0) index.rows.splice(at, 1);
          else if (change.expiresAt !== null && at < 0) index.rows.push({ holdId: change.holdId, balanceId: change.balanceId, expiresAt: change.expiresAt });
        }
      },
      async due(now, limit) {
        index.dueCalls += 1;
        return index.rows.filter((row) => row.expiresAt <= now).sort((a, b) => a.expiresAt.getTime() - b.expiresAt.getTime()).slice(0, limit);
      },
      async oldestDue(now) {
        const due = index.rows.filter((row) => row.expiresAt <= now).map((row) => row.expiresAt.getTime());
        return due.length > 0 ? new Date(Math.min(...due)) : null;
      },
    };
    return index;
  }

  const row = (holdId: string, ms: number) => ({ holdId, balanceId: holdId.split(':')[0]!, expiresAt: new Date(ms) });

  it('forgets rows of holds found freed already (an index behind the ledger), so the due holds behind a full batch of them expire', async () => {
    // 100 rows of holds captured meanwhile, the index not yet told, ahead of one really due.
    const index = memoryIndex([...Array.from({ length: 100 }, (_, i) => row(`freed:${i}`, i)), row('due:1', 1000)]);
    const expired: string[] = [];
    const ledger = {
      expireHold: async (holdId: string) => {
        if (holdId.startsWith('freed:')) throw new HoldNotOpenError(`hold ${holdId} was captured`);
        expired.push(holdId);
        return { replayed: false } as Awaited<ReturnType<LedgerService['expireHold']>>;
      },
    };
    const worker = createHoldExpiryWorker({ eventStore, checkpoints, index, ledger, logger, pollIntervalMs: POLL_MS, batchSize: 100, clock: () => new Date(10_000) });
    await worker.start();
    try {
      await jest.advanceTimersByTimeAsync(POLL_MS);
      await settle();
      // The first sweep refused the 100 and forgot them; it made progress, so the next ran at once.
      expect(expired).toEqual(['due:1']);
      expect(index.rows).toEqual([]);
      expect(index.dueCalls).toBe(2);
      // Nothing left: the worker waits for the interval, not a busy loop.
      await jest.advanceTimersByTimeAsync(POLL_MS - 100);
      expect(index.dueCalls).toBe(2);
    } finally {
      await worker.stop();
    }
  });

  it('waits for the interval after a full batch that made no progress (holds not yet expired by this clock)', async () => {
    const index = memoryIndex(Array.from({ length: 10 }, (_, i) => row(`early:${i}`, i)));
    const ledger = {
      expireHold: async (holdId: string): Promise<Awaited<ReturnType<LedgerService['expireHold']>>> => {
        throw new HoldNotExpiredError(`hold ${holdId} expires later by the ledger's clock`);
      },
    };
    const worker = createHoldExpiryWorker({ eventStore, checkpoints, index, ledger, logger, pollIntervalMs: POLL_MS, batchSize: 10, clock: () => new Date(10_000) });
    await worker.start();
    try {
      await jest.advanceTimersByTimeAsync(POLL_MS);
      await settle();
      expect(index.dueCalls).toBe(1);
      // Not expired, so kept: the next look retries them, after the interval.
      expect(index.rows).toHaveLength(10);
      await jest.advanceTimersByTimeAsync(POLL_MS - 100);
      expect(index.dueCalls).toBe(1);
      await jest.advanceTimersByTimeAsync(100);
      await settle();
      expect(index.dueCalls).toBe(2);
    } finally {
      await worker.stop();
    }
  });
});

describe('createHoldExpiryWorker overdue gauge', () => {
  const ledger = { expireHold: async () => ({ replayed: false }) as Awaited<ReturnType<LedgerService['expireHold']>> };

  it('keeps its last value while the index cannot be read, without ageing an old read, and reports the failure', async () => {
    let now = 100_000;
    let readable = true;
    const index: HoldExpiryIndex = {
      apply: async () => {},
      due: async () => [],
      oldestDue: async () => {
        if (!readable) throw new Error('connection refused');
        return new Date(40_000);
      },
    };
    const failures: string[] = [];
    const metrics = createMetricsRegistry({ onCollectError: (_error, metric) => failures.push(metric) });
    createHoldExpiryWorker({ eventStore: {} as never, checkpoints: {} as never, index, ledger, logger: pino({ level: 'silent' }), metrics, clock: () => new Date(now) });
    const overdue = async () => Number(/^tally_hold_expiry_overdue_seconds (\S+)$/m.exec(await metrics.render())?.[1]);

    expect(await overdue()).toBe(60);
    readable = false;
    now += 30_000;
    // The sweep may have freed that hold a second after the read: 90 would be a guess.
    expect(await overdue()).toBe(60);
    expect(failures).toEqual(['tally_hold_expiry_overdue_seconds']);
    readable = true;
    expect(await overdue()).toBe(90);
  });

  it('answers the scrape without waiting for an index read that hangs, and starts no second read while it runs', async () => {
    const now = 100_000;
    let reads = 0;
    let answer: ((oldest: Date | null) => void) | undefined;
    const index: HoldExpiryIndex = {
      apply: async () => {},
      due: async () => [],
      oldestDue: () => {
        reads += 1;
        return reads === 1 ? Promise.resolve(new Date(40_000)) : new Promise<Date | null>((resolve) => (answer = resolve));
      },
    };
    const failures: string[] = [];
    const metrics = createMetricsRegistry({ onCollectError: (_error, metric) => failures.push(metric) });
    const options = { eventStore: {} as never, checkpoints: {} as never, index, ledger, logger: pino({ level: 'silent' }), metrics, clock: () => new Date(now) };
    createHoldExpiryWorker({ ...options, overdueReadTimeoutMs: 50 });
    const overdue = async () => Number(/^tally_hold_expiry_overdue_seconds (\S+)$/m.exec(await metrics.render())?.[1]);

    expect(await overdue()).toBe(60);
    expect(await overdue()).toBe(60);
    expect(await overdue()).toBe(60);
    expect([reads, failures]).toEqual([2, ['tally_hold_expiry_overdue_seconds', 'tally_hold_expiry_overdue_seconds']]);
    // The read in flight answers the next scrape; the one after starts a read of its own.
    answer!(null);
    expect(await overdue()).toBe(0);
    await overdue();
    expect(reads).toBe(3);
  });
});
