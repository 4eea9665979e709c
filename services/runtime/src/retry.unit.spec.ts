import { Writable } from 'node:stream';
import pino from 'pino';
import { abandonable, createBackoff, HeartbeatError, isTransientError, retry, withDeadline } from './retry';

const transient = (message = 'connection refused') => Object.assign(new Error(message), { retriable: true });
const isTransient = (error: unknown) => (error as { retriable?: unknown }).retriable === true;

/** Settles `promise` while advancing jest's fake clock; no real time passes. */
async function settle<T>(promise: Promise<T>): Promise<PromiseSettledResult<T>> {
  const outcome = promise.then(
    (value) => ({ status: 'fulfilled' as const, value }),
    (reason: unknown) => ({ status: 'rejected' as const, reason }),
  );
  let settled = false;
  void outcome.finally(() => (settled = true));
  for (let round = 0; round < 10_000 && !settled; round += 1) await jest.advanceTimersToNextTimerAsync();
  return outcome;
}

describe('createBackoff', () => {
  it('doubles the ceiling from the initial delay up to the cap, with full jitter by default', () => {
    const top = createBackoff({ initialDelayMs: 100, maxDelayMs: 1000, random: () => 0.999999 });
    expect([1, 2, 3, 4, 5, 50].map((failures) => top.delayMs(failures))).toEqual([100, 200, 400, 800, 1000, 1000]);
    const bottom = createBackoff({ initialDelayMs: 100, maxDelayMs: 1000, random: () => 0 });
    expect([1, 2, 5].map((failures) => bottom.delayMs(failures))).toEqual([0, 0, 0]);
  });

  it('keeps equal jitter in the upper half of the ceiling', () => {
    const bottom = createBackoff({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 'equal', random: () => 0 });
    expect([1, 2, 3].map((failures) => bottom.delayMs(failures))).toEqual([50, 100, 200]);
  });

  it('stays within [0, ceiling] for any random draw and any number of failures', () => {
    for (let failures = 1; failures < 80; failures += 7) {
      for (const draw of [0, 0.25, 0.5, 0.999999]) {
        const delay = createBackoff({ initialDelayMs: 2, maxDelayMs: 250, random: () => draw }).delayMs(failures);
        expect(Number.isInteger(delay)).toBe(true);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(Math.min(250, 2 ** failures));
      }
    }
  });
});

describe('retry', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('retries transient failures until the operation succeeds, telling onAttempt each delay', async () => {
    const attempts: number[] = [];
    const failed: Array<{ attempt: number; delayMs: number }> = [];
    const outcome = await settle(
      retry(
        async (attempt) => {
          attempts.push(attempt);
          if (attempt < 4) throw transient();
          return 'done';
        },
        { what: 'append', isTransient, initialDelayMs: 10, maxDelayMs: 40, random: () => 0.999999, onAttempt: ({ attempt, delayMs }) => failed.push({ attempt, delayMs }) },
      ),
    );
    expect(outcome).toEqual({ status: 'fulfilled', value: 'done' });
    expect(attempts).toEqual([1, 2, 3, 4]);
    expect(failed).toEqual([
      { attempt: 1, delayMs: 10 },
      { attempt: 2, delayMs: 20 },
      { attempt: 3, delayMs: 40 },
    ]);
  });

  it('rethrows a failure that is not transient at once', async () => {
    const bug = new TypeError('a bug');
    let calls = 0;
    const outcome = await settle(
      retry(
        async () => {
          calls += 1;
          throw bug;
        },
        { what: 'append', isTransient },
      ),
    );
    expect(outcome).toEqual({ status: 'rejected', reason: bug });
    expect(calls).toBe(1);
  });

  it('gives up after maxAttempts with the last failure', async () => {
    let calls = 0;
    const outcome = await settle(
      retry(
        async () => {
          calls += 1;
          throw transient(`failure ${calls}`);
        },
        { what: 'append', maxAttempts: 3, initialDelayMs: 5 },
      ),
    );
    expect(outcome.status).toBe('rejected');
    expect((outcome as PromiseRejectedResult).reason.message).toBe('failure 3');
    expect(calls).toBe(3);
  });

  it('gives up rather than wait past the deadline', async () => {
    let calls = 0;
    const outcome = await settle(
      retry(
        async () => {
          calls += 1;
          throw transient();
        },
        { what: 'append', deadlineMs: 1000, initialDelayMs: 400, maxDelayMs: 400, random: () => 0.999999 },
      ),
    );
    expect(outcome.status).toBe('rejected');
    // Waits of 400 ms: after 0, 400 and 800 ms; a fourth wait would end at 1200 ms, past the deadline.
    expect(calls).toBe(3);
  });

  it('ends a backoff at once when the signal is aborted, rejecting with its reason', async () => {
    const abort = new AbortController();
    const stopping = new Error('stopping');
    let calls = 0;
    const running = retry(
      async () => {
        calls += 1;
        if (calls === 1) void Promise.resolve().then(() => abort.abort(stopping));
        throw transient();
      },
      { what: 'append', signal: abort.signal, initialDelayMs: 60_000, maxDelayMs: 60_000, random: () => 0.999999 },
    );
    // No timer is advanced: the abort alone ends the wait.
    await expect(running).rejects.toBe(stopping);
    expect(calls).toBe(1);
  });

  it('lets the attempt in flight finish after an abort, unless abandonOnAbort', async () => {
    const abort = new AbortController();
    let finish: (value: string) => void = () => undefined;
    const finishing = retry(() => new Promise<string>((resolve) => (finish = resolve)), { what: 'save', signal: abort.signal });
    abort.abort(new Error('stopping'));
    finish('saved');
    await expect(finishing).resolves.toBe('saved');

    const hanging = new AbortController();
    const stuck = retry(() => new Promise<string>(() => undefined), { what: 'write to redis', signal: hanging.signal, abandonOnAbort: true });
    const reason = new Error('projector stopping');
    hanging.abort(reason);
    await expect(stuck).rejects.toBe(reason);
  });

  it('abandons a wait when its signal aborts, or at once when it already has, leaving the work to go on', async () => {
    let finish: (value: string) => void = () => undefined;
    const work = new Promise<string>((resolve) => (finish = resolve));
    const budget = new AbortController();
    const waiting = abandonable(work, budget.signal);
    const spent = new Error('budget spent');
    budget.abort(spent);
    await expect(waiting).rejects.toBe(spent);
    // A deadline that passed before the wait began: refused at once, not after the work.
    await expect(abandonable(work, budget.signal)).rejects.toBe(spent);
    finish('done');
    await expect(work).resolves.toBe('done');
    await expect(abandonable(work, new AbortController().signal)).resolves.toBe('done');
  });

  it('gives up waiting at a deadline with the error it is told, leaving the work to go on, and leaves no timer behind', async () => {
    jest.useFakeTimers();
    try {
      let finish: (value: string) => void = () => undefined;
      const work = new Promise<string>((resolve) => (finish = resolve));
      let made = 0;
      const waiting = withDeadline(work, 1_000, () => new Error(`late ${(made += 1)}`));
      jest.advanceTimersByTime(999);
      expect(made).toBe(0);
      jest.advanceTimersByTime(1);
      await expect(waiting).rejects.toThrow('late 1');
      finish('done');
      await expect(work).resolves.toBe('done');

      // Work done in time: its answer, or its own failure, and the timer cleared.
      await expect(withDeadline(Promise.resolve('quick'), 1_000, () => new Error('late'))).resolves.toBe('quick');
      await expect(withDeadline(Promise.reject(new Error('refused')), 1_000, () => new Error('late'))).rejects.toThrow('refused');
      expect(jest.getTimerCount()).toBe(0);
      expect(made).toBe(1);
    } finally {
      jest.useRealTimers();
    }
  });

  it('heartbeats while an attempt and a backoff run, and after each failure', async () => {
    let beats = 0;
    const heartbeat = { everyMs: 10, beat: async () => void (beats += 1) };
    const slow = settle(retry(() => new Promise((resolve) => setTimeout(resolve, 55)), { what: 'slow step', heartbeat }));
    expect((await slow).status).toBe('fulfilled');
    expect(beats).toBe(5);

    beats = 0;
    let calls = 0;
    const failing = settle(
      retry(
        async () => {
          calls += 1;
          if (calls < 3) throw transient();
        },
        { what: 'append', heartbeat, initialDelayMs: 0, maxDelayMs: 0 },
      ),
    );
    expect((await failing).status).toBe('fulfilled');
    expect(beats).toBe(2);
  });

  it('ends with a HeartbeatError when the heartbeat fails, even if the attempt succeeded', async () => {
    const rebalance = new Error('The group is rebalancing');
    const heartbeat = { everyMs: 10, beat: () => Promise.reject(rebalance) };
    const outcome = await settle(retry(() => new Promise((resolve) => setTimeout(resolve, 30)), { what: 'slow step', heartbeat }));
    expect(outcome.status).toBe('rejected');
    const error = (outcome as PromiseRejectedResult).reason;
    expect(error).toBeInstanceOf(HeartbeatError);
    expect(error.cause).toBe(rebalance);

    // And instead of retrying a transient failure: the heartbeat after it fails.
    let calls = 0;
    const failing = await settle(
      retry(
        async () => {
          calls += 1;
          throw transient();
        },
        { what: 'append', heartbeat, initialDelayMs: 10 },
      ),
    );
    expect((failing as PromiseRejectedResult).reason).toBeInstanceOf(HeartbeatError);
    expect(calls).toBe(1);
  });

  it('lets a heartbeat that finds the work given up abort it: no further attempt, the signal\'s reason thrown', async () => {
    let running = true;
    const abort = new AbortController();
    const stopping = new Error('consumer stopping');
    const heartbeat = {
      everyMs: 5,
      beat: async () => {
        if (!running) abort.abort(stopping);
      },
    };
    let calls = 0;
    const outcome = await settle(
      retry(
        async () => {
          calls += 1;
          if (calls === 1) setTimeout(() => (running = false), 10);
          throw transient();
        },
        { what: 'append', heartbeat, signal: abort.signal, jitter: 'equal', initialDelayMs: 60_000, maxDelayMs: 60_000 },
      ),
    );
    expect(outcome).toEqual({ status: 'rejected', reason: stopping });
    expect(calls).toBe(1);

    // Given up while the attempt ran: the beat after its failure ends the retry, announcing none.
    const givenUp = new AbortController();
    let failed = false;
    const retried: number[] = [];
    const given = await settle(
      retry(
        async () => {
          failed = true;
          throw transient();
        },
        {
          what: 'append',
          heartbeat: { everyMs: 60_000, beat: async () => void (failed && givenUp.abort(stopping)) },
          signal: givenUp.signal,
          onAttempt: ({ attempt }) => retried.push(attempt),
        },
      ),
    );
    expect(given).toEqual({ status: 'rejected', reason: stopping });
    expect(retried).toEqual([]);
  });

  it('logs each retried failure with what was being done as its stage', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    let calls = 0;
    const outcome = await settle(
      retry(
        async () => {
          calls += 1;
          if (calls < 3) throw transient();
        },
        { what: 'wait for balance openings', logger: pino(sink), initialDelayMs: 0, maxDelayMs: 0 },
      ),
    );
    expect(outcome.status).toBe('fulfilled');
    expect(lines.map(({ msg, stage, attempt }) => ({ msg, stage, attempt }))).toEqual([
      { msg: 'wait for balance openings failed; retrying', stage: 'wait for balance openings', attempt: 1 },
      { msg: 'wait for balance openings failed; retrying', stage: 'wait for balance openings', attempt: 2 },
    ]);
  });

  it('ends with what onAttempt throws', async () => {
    const abandoned = new Error('the batch is no longer ours');
    const outcome = await settle(
      retry(() => Promise.reject(transient()), {
        what: 'append',
        onAttempt: () => {
          throw abandoned;
        },
      }),
    );
    expect(outcome).toEqual({ status: 'rejected', reason: abandoned });
  });
});

describe('isTransientError', () => {
  it('retries what says it is retriable and PostgreSQL\'s transient failures, nothing else', () => {
    expect(isTransientError(transient())).toBe(true);
    expect(isTransientError(Object.assign(new Error('serialization failure'), { code: '40001' }))).toBe(true);
    for (const deterministic of [
      Object.assign(new Error('invalid input syntax for type json'), { code: '22P02' }),
      Object.assign(new Error('not retriable'), { retriable: false }),
      new TypeError('a bug'),
      undefined,
      null,
    ]) {
      expect(isTransientError(deterministic)).toBe(false);
    }
  });
});
