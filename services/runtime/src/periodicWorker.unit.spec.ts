import { capturedLog } from '@tally/test-support';
import pino from 'pino';
import { createPeriodicWorker } from './periodicWorker';

const logger = pino({ level: 'silent' });

describe('createPeriodicWorker', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('runs at start, then intervalMs after each run ends, at once while a run says work is left', async () => {
    const runs: number[] = [];
    let behind = 2;
    const worker = createPeriodicWorker({
      name: 'scheduler',
      logger,
      intervalMs: 1000,
      run: async () => {
        runs.push(Date.now());
        behind = Math.max(0, behind - 1);
        return behind > 0;
      },
    });
    const startedAt = Date.now();
    await worker.start();
    await jest.advanceTimersByTimeAsync(0);
    // The first run left work: the second follows at once; it left none: the third waits.
    expect(runs.map((at) => at - startedAt)).toEqual([0, 0]);
    await jest.advanceTimersByTimeAsync(999);
    expect(runs).toHaveLength(2);
    await jest.advanceTimersByTimeAsync(1);
    expect(runs.map((at) => at - startedAt)).toEqual([0, 0, 1000]);
    await worker.stop();
    await jest.advanceTimersByTimeAsync(5000);
    expect(runs).toHaveLength(3);
  });

  it('keeps running after a failed run, after the interval', async () => {
    let calls = 0;
    const worker = createPeriodicWorker({
      name: 'scheduler',
      logger,
      intervalMs: 500,
      run: async () => {
        calls += 1;
        if (calls === 1) throw new Error('database away');
      },
    });
    await worker.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    await jest.advanceTimersByTimeAsync(500);
    expect(calls).toBe(2);
    await worker.stop();
  });

  it('stop waits for the run in flight, whose signal it aborts, and no run follows', async () => {
    let finish: () => void = () => undefined;
    let seen: AbortSignal | undefined;
    let calls = 0;
    const worker = createPeriodicWorker({
      name: 'scheduler',
      logger,
      intervalMs: 10,
      run: (signal) => {
        calls += 1;
        seen = signal;
        return new Promise<void>((resolve) => (finish = resolve));
      },
    });
    await worker.start();
    let stopped = false;
    const stopping = worker.stop().then(() => (stopped = true));
    await jest.advanceTimersByTimeAsync(100);
    expect(seen?.aborted).toBe(true);
    expect(stopped).toBe(false);
    finish();
    await stopping;
    await jest.advanceTimersByTimeAsync(100);
    expect(calls).toBe(1);
  });

  it('with abandonOnStop, stop does not wait for the run in flight, and its later failure is not told as one', async () => {
    const { logger: capturing, lines } = capturedLog('debug');
    let fail: (error: Error) => void = () => undefined;
    let calls = 0;
    const worker = createPeriodicWorker({
      name: 'lag',
      logger: capturing,
      intervalMs: 10,
      abandonOnStop: true,
      run: () => {
        calls += 1;
        return new Promise<void>((_resolve, reject) => (fail = reject));
      },
    });
    await worker.start();
    await worker.stop();
    fail(new Error('the database answered at last, with an error'));
    await jest.advanceTimersByTimeAsync(100);
    expect(calls).toBe(1);
    expect(lines).toEqual([]);
  });

  it('with runAtStart false, runs first intervalMs after start', async () => {
    let calls = 0;
    const worker = createPeriodicWorker({ name: 'cache', logger, intervalMs: 300, runAtStart: false, run: async () => void (calls += 1) });
    await worker.start();
    await jest.advanceTimersByTimeAsync(299);
    expect(calls).toBe(0);
    await jest.advanceTimersByTimeAsync(1);
    expect(calls).toBe(1);
    await jest.advanceTimersByTimeAsync(300);
    expect(calls).toBe(2);
    await worker.stop();
    await jest.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(2);
  });

  it('refuses an interval that is not a positive integer', () => {
    expect(() => createPeriodicWorker({ name: 'x', logger, intervalMs: 0, run: async () => undefined })).toThrow(RangeError);
  });
});
