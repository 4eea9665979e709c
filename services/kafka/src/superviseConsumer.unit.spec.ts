import type { Backoff } from '@tally/runtime';
import type { Consumer, ConsumerRunConfig } from 'kafkajs';
import pino from 'pino';
import { superviseConsumer } from './superviseConsumer';

describe('superviseConsumer', () => {
  /** A consumer that keeps its CRASH and GROUP_JOIN listeners, for the test to call, and records its runs. */
  function fakeConsumer(runError?: Error) {
    const listeners = new Map<string, (event: { payload: unknown }) => void>();
    const runs: ConsumerRunConfig[] = [];
    const consumer = {
      events: { CRASH: 'consumer.crash', GROUP_JOIN: 'consumer.group_join' },
      on: (name: string, handler: (event: { payload: unknown }) => void) => listeners.set(name, handler),
      run: async (config: ConsumerRunConfig) => {
        runs.push(config);
        if (runError !== undefined && runs.length > 1) throw runError;
      },
    } as unknown as Consumer;
    return {
      consumer,
      runs,
      crash: (error: Error, restart: boolean) => listeners.get('consumer.crash')!({ payload: { error, restart } }),
      join: () => listeners.get('consumer.group_join')!({ payload: {} }),
    };
  }

  /** kafkajs's error for a connection lost while finding the coordinator, by name as kafkajs sets it. */
  function lostCoordinator(): Error {
    const error = new Error('Failed to find group coordinator');
    error.name = 'KafkaJSGroupCoordinatorNotFound';
    return error;
  }

  /** A backoff that waits no time and records the failure counts it was asked for. */
  function recordingBackoff(asked: number[]): Backoff {
    return { delayMs: () => 0, wait: async (failures) => void asked.push(failures) };
  }

  const settle = () => new Promise((resolve) => setImmediate(resolve));

  function logLines() {
    const lines: Array<Record<string, unknown>> = [];
    return { lines, logger: pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) }) };
  }

  it('fails the worker with the error when kafkajs does not restart, and only logs a crash it restarts from', async () => {
    const { consumer, crash, runs } = fakeConsumer();
    const { lines, logger } = logLines();
    const failed: unknown[] = [];
    const supervised = superviseConsumer(consumer, { logger, fail: (error) => failed.push(error), message: 'recorder crashed' });
    await supervised.run({}, new AbortController().signal);
    const passing = new Error('a broker away');
    crash(passing, true);
    expect(failed).toEqual([]);
    const final = new Error('not authorized');
    crash(final, false);
    await settle();
    expect(failed).toEqual([final]);
    expect(runs).toHaveLength(1);
    expect(lines).toMatchObject([
      { level: 50, msg: 'recorder crashed', restart: true, err: { message: 'a broker away' } },
      { level: 50, msg: 'recorder crashed', restart: false, err: { message: 'not authorized' } },
    ]);
  });

  it('runs the same configuration again after a lost coordinator, direct or as a cause, with a growing pause that a join starts over', async () => {
    const { consumer, crash, join, runs } = fakeConsumer();
    const asked: number[] = [];
    const failed: unknown[] = [];
    const supervised = superviseConsumer(consumer, { logger: pino({ level: 'silent' }), fail: (error) => failed.push(error), backoff: recordingBackoff(asked) });
    const config: ConsumerRunConfig = { partitionsConsumedConcurrently: 2 };
    await supervised.run(config, new AbortController().signal);
    crash(lostCoordinator(), false);
    await settle();
    crash(new Error('wrapped', { cause: lostCoordinator() }), false);
    await settle();
    join();
    crash(lostCoordinator(), false);
    await settle();
    expect(failed).toEqual([]);
    expect(runs).toEqual([config, config, config, config]);
    expect(asked).toEqual([1, 2, 1]);
  });

  it('is settled only once a run again has returned, for a stop to await before disconnecting', async () => {
    const { consumer, crash, runs } = fakeConsumer();
    let joined!: () => void;
    const joining = new Promise<void>((resolve) => (joined = resolve));
    const supervised = superviseConsumer(consumer, { logger: pino({ level: 'silent' }), fail: () => undefined, backoff: recordingBackoff([]) });
    await supervised.run({}, new AbortController().signal);
    await supervised.settled();
    // The run again joins until `joined`: kafkajs's stop would not stop it meanwhile.
    (consumer as unknown as { run: () => Promise<void> }).run = async () => {
      runs.push({});
      await joining;
    };
    crash(lostCoordinator(), false);
    let settled = false;
    void supervised.settled().then(() => (settled = true));
    await settle();
    expect([runs.length, settled]).toEqual([2, false]);
    joined();
    await settle();
    expect(settled).toBe(true);
  });

  it('disconnects a run again whose join ends after the worker stopped', async () => {
    const { consumer, crash, runs } = fakeConsumer();
    let joined!: () => void;
    const joining = new Promise<void>((resolve) => (joined = resolve));
    let disconnects = 0;
    Object.assign(consumer, { disconnect: async () => void (disconnects += 1) });
    const stop = new AbortController();
    const supervised = superviseConsumer(consumer, { logger: pino({ level: 'silent' }), fail: () => undefined, backoff: recordingBackoff([]) });
    await supervised.run({}, stop.signal);
    (consumer as unknown as { run: () => Promise<void> }).run = async () => {
      runs.push({});
      await joining;
    };
    crash(lostCoordinator(), false);
    await settle();
    stop.abort();
    expect(disconnects).toBe(0);
    joined();
    await supervised.settled();
    expect([runs.length, disconnects]).toEqual([2, 1]);
  });

  it('fails the worker once crashes in a row on a lost coordinator outlast the time it runs them again', async () => {
    const { consumer, crash, runs } = fakeConsumer();
    let now = 1_000;
    const failed: unknown[] = [];
    const supervised = superviseConsumer(consumer, { logger: pino({ level: 'silent' }), fail: (error) => failed.push(error), backoff: recordingBackoff([]), now: () => now, rerunForMs: 60_000 });
    await supervised.run({}, new AbortController().signal);
    crash(lostCoordinator(), false);
    await settle();
    now += 59_999;
    crash(lostCoordinator(), false);
    await settle();
    expect(failed).toEqual([]);
    now += 1;
    const last = lostCoordinator();
    crash(last, false);
    await settle();
    expect(failed).toEqual([last]);
    expect(runs).toHaveLength(3);
  });

  it('neither runs again nor fails after the worker stops, and fails the worker when running again throws', async () => {
    const stopping = fakeConsumer();
    const stop = new AbortController();
    const failed: unknown[] = [];
    const supervised = superviseConsumer(stopping.consumer, { logger: pino({ level: 'silent' }), fail: (error) => failed.push(error), backoff: recordingBackoff([]) });
    await supervised.run({}, stop.signal);
    stop.abort();
    stopping.crash(lostCoordinator(), false);
    await settle();
    expect(stopping.runs).toHaveLength(1);
    expect(failed).toEqual([]);

    const refusal = new Error('consumer#run refused');
    const throwing = fakeConsumer(refusal);
    const again = superviseConsumer(throwing.consumer, { logger: pino({ level: 'silent' }), fail: (error) => failed.push(error), backoff: recordingBackoff([]) });
    await again.run({}, new AbortController().signal);
    throwing.crash(lostCoordinator(), false);
    await settle();
    expect(failed).toEqual([refusal]);
  });
});
