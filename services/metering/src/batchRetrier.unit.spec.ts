import pino from 'pino';
import { BatchAbandonedError, createBatchRetrier, isHeartbeatError, type BatchLiveness } from './batchRetrier';

const logger = pino({ level: 'silent' });

function liveness(overrides: Partial<BatchLiveness> = {}): BatchLiveness & { heartbeats: number } {
  const state = {
    heartbeats: 0,
    async heartbeat() {
      state.heartbeats += 1;
    },
    isRunning: () => true,
    isStale: () => false,
    ...overrides,
  };
  return state;
}

const transient = () => Object.assign(new Error('connection refused'), { retriable: true });

describe('createBatchRetrier', () => {
  it('retries a failing step with backoff, heartbeating while it waits, until it succeeds', async () => {
    const live = liveness();
    const retrier = createBatchRetrier({ liveness: live, logger, maxBackoffMs: 20, initialBackoffMs: 10, heartbeatEveryMs: 5 });
    let calls = 0;
    const result = await retrier.run('append', async () => {
      calls += 1;
      if (calls < 4) throw calls % 2 === 0 ? Object.assign(new Error('serialization failure'), { code: '40001' }) : transient();
      return 'done';
    });
    expect(result).toBe('done');
    expect(calls).toBe(4);
    expect(live.heartbeats).toBeGreaterThanOrEqual(3);
  });

  it('rethrows a deterministic failure at once, for the consumer to isolate', async () => {
    const retrier = createBatchRetrier({ liveness: liveness(), logger, maxBackoffMs: 20, initialBackoffMs: 10 });
    for (const failure of [
      Object.assign(new Error('invalid input syntax for type json'), { code: '22P02' }),
      Object.assign(new Error('not retriable'), { retriable: false }),
      new TypeError('a bug'),
    ]) {
      let calls = 0;
      await expect(
        retrier.run('append', async () => {
          calls += 1;
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(calls).toBe(1);
      expect(isHeartbeatError(failure)).toBe(false);
    }
  });

  it('heartbeats while a slow step runs', async () => {
    const live = liveness();
    const retrier = createBatchRetrier({ liveness: live, logger, maxBackoffMs: 20, heartbeatEveryMs: 5 });
    await retrier.run('slow', () => new Promise((resolve) => setTimeout(resolve, 60)));
    expect(live.heartbeats).toBeGreaterThanOrEqual(3);
  });

  it('rethrows errors the caller handles itself', async () => {
    const retrier = createBatchRetrier({ liveness: liveness(), logger, maxBackoffMs: 20 });
    const conflict = new Error('conflict');
    await expect(retrier.run('append', () => Promise.reject(conflict), (error) => error === conflict)).rejects.toBe(conflict);
  });

  it('gives the batch up when the consumer is stopping while a dependency is down', async () => {
    let running = true;
    const retrier = createBatchRetrier({ liveness: liveness({ isRunning: () => running }), logger, maxBackoffMs: 50, initialBackoffMs: 50, heartbeatEveryMs: 5 });
    let calls = 0;
    const run = retrier.run('append', async () => {
      calls += 1;
      if (calls === 1) setTimeout(() => (running = false), 10);
      throw transient();
    });
    await expect(run).rejects.toBeInstanceOf(BatchAbandonedError);
    expect(calls).toBe(1);
  });

  it('lets a rebalance seen by a heartbeat end the batch, even when the step succeeded', async () => {
    const rebalance = Object.assign(new Error('The group is rebalancing'), { type: 'REBALANCE_IN_PROGRESS' });
    const live = liveness({ heartbeat: () => Promise.reject(rebalance) });
    const retrier = createBatchRetrier({ liveness: live, logger, maxBackoffMs: 20, heartbeatEveryMs: 5 });
    await expect(retrier.run('slow', () => new Promise((resolve) => setTimeout(resolve, 30)))).rejects.toBe(rebalance);
    await expect(retrier.run('failing', () => Promise.reject(transient()))).rejects.toBe(rebalance);
    expect(isHeartbeatError(rebalance)).toBe(true);
  });
});
