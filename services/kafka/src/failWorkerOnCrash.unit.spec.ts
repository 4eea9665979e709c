import type { Consumer } from 'kafkajs';
import pino from 'pino';
import { failWorkerOnCrash } from './failWorkerOnCrash';

describe('failWorkerOnCrash', () => {
  /** A consumer that only keeps its CRASH listener, for the test to call. */
  function crashingConsumer() {
    let listener: ((event: { payload: { error: Error; restart: boolean } }) => void) | undefined;
    const consumer = { events: { CRASH: 'consumer.crash' }, on: (_name: string, handler: typeof listener) => (listener = handler) } as unknown as Consumer;
    return { consumer, crash: (error: Error, restart: boolean) => listener!({ payload: { error, restart } }) };
  }

  it('fails the worker with the error when kafkajs does not restart, and only logs a crash it restarts from', () => {
    const { consumer, crash } = crashingConsumer();
    const lines: unknown[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const failed: unknown[] = [];
    failWorkerOnCrash(consumer, logger, (error) => failed.push(error), 'recorder crashed');
    const passing = new Error('a broker away');
    crash(passing, true);
    expect(failed).toEqual([]);
    const final = new Error('not authorized');
    crash(final, false);
    expect(failed).toEqual([final]);
    expect(lines).toMatchObject([
      { level: 50, msg: 'recorder crashed', restart: true, err: { message: 'a broker away' } },
      { level: 50, msg: 'recorder crashed', restart: false, err: { message: 'not authorized' } },
    ]);
  });
});
