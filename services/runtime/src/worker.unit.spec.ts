import pino from 'pino';
import { createWorker, createWorkerGroup, type WorkerBody } from './worker';

const logger = pino({ level: 'silent' });

function recordingBody(log: string[], name: string, overrides: Partial<WorkerBody> = {}): WorkerBody {
  return {
    start: async () => void log.push(`start ${name}`),
    stop: async () => void log.push(`stop ${name}`),
    ...overrides,
  };
}

describe('createWorker', () => {
  it('goes idle → running → stopped, and stops once however often stop() is called', async () => {
    const log: string[] = [];
    const worker = createWorker('relay', recordingBody(log, 'relay'));
    expect(worker.state()).toBe('idle');
    await worker.start();
    expect(worker.state()).toBe('running');
    await Promise.all([worker.stop(), worker.stop()]);
    await worker.stop();
    expect(worker.state()).toBe('stopped');
    expect(log).toEqual(['start relay', 'stop relay']);
  });

  it('refuses a second start', async () => {
    const worker = createWorker('relay', recordingBody([], 'relay'));
    await worker.start();
    await expect(worker.start()).rejects.toThrow('relay was already started');
  });

  it('aborts a start in progress on stop, and stops after it settled', async () => {
    const log: string[] = [];
    let seen: AbortSignal | undefined;
    const worker = createWorker(
      'projector',
      recordingBody(log, 'projector', {
        // A start that waits for a dependency that is down, until it is told to stop.
        start: (signal) =>
          new Promise<void>((resolve) => {
            seen = signal;
            signal.addEventListener('abort', () => {
              log.push('start gave up');
              resolve();
            });
          }),
      }),
    );
    const starting = worker.start();
    expect(worker.state()).toBe('starting');
    await worker.stop();
    await starting;
    expect(seen?.aborted).toBe(true);
    expect(log).toEqual(['start gave up', 'stop projector']);
    expect(worker.state()).toBe('stopped');
  });

  it('is failed when its start rejects, and stop still releases it', async () => {
    const log: string[] = [];
    const refused = new Error('schema refused');
    const worker = createWorker('relay', recordingBody(log, 'relay', { start: () => Promise.reject(refused) }));
    await expect(worker.start()).rejects.toBe(refused);
    expect(worker.state()).toBe('failed');
    await worker.stop();
    expect(log).toEqual(['stop relay']);
  });

  it('is failed when its body fails while running, tells its listeners (late ones too), and stop still releases it', async () => {
    const log: string[] = [];
    let fail: ((error: unknown) => void) | undefined;
    const worker = createWorker('consumer', recordingBody(log, 'consumer', { start: async (_, failed) => void (fail = failed) }));
    const told: unknown[] = [];
    worker.onFailure((error) => told.push(error));
    await worker.start();
    const crash = new Error('the client gave up');
    fail!(crash);
    fail!(new Error('again'));
    expect(worker.state()).toBe('failed');
    worker.onFailure((error) => told.push(error));
    expect(told).toEqual([crash, crash]);
    await worker.stop();
    expect(worker.state()).toBe('stopped');
    expect(log).toEqual(['stop consumer']);
  });

  it('ignores a failure reported while stopping: that is the stop', async () => {
    let fail: ((error: unknown) => void) | undefined;
    const worker = createWorker('consumer', recordingBody([], 'consumer', { start: async (_, failed) => void (fail = failed), stop: async () => fail!(new Error('disconnected')) }));
    const told: unknown[] = [];
    worker.onFailure((error) => told.push(error));
    await worker.start();
    await worker.stop();
    expect(worker.state()).toBe('stopped');
    expect(told).toEqual([]);
  });

  it('stops an idle worker without calling its body', async () => {
    const log: string[] = [];
    const worker = createWorker('scheduler', recordingBody(log, 'scheduler'));
    await worker.stop();
    expect(worker.state()).toBe('stopped');
    expect(log).toEqual([]);
  });
});

describe('createWorkerGroup', () => {
  afterEach(() => jest.useRealTimers());

  it('stops workers and other parts in the reverse order of their start, past a failing stop', async () => {
    const log: string[] = [];
    const group = createWorkerGroup({ logger, stopTimeoutMs: 60_000 });
    group.add('postgres', () => void log.push('stop postgres'));
    await group.start(createWorker('consumer', recordingBody(log, 'consumer')));
    await group.start(createWorker('relay', recordingBody(log, 'relay', { stop: () => Promise.reject(new Error('broker gone')) })));
    group.add('api', async () => void log.push('stop api'));
    expect(await group.stop()).toEqual({ completed: true, failed: ['relay'] });
    expect(log).toEqual(['start consumer', 'start relay', 'stop api', 'stop consumer', 'stop postgres']);
  });

  it('tells its owner when a started worker fails while running', async () => {
    let fail: ((error: unknown) => void) | undefined;
    const failures: Array<[string, unknown]> = [];
    const group = createWorkerGroup({ logger, stopTimeoutMs: 60_000, onFailure: (name, error) => failures.push([name, error]) });
    await group.start(createWorker('consumer', recordingBody([], 'consumer', { start: async (_, failed) => void (fail = failed) })));
    const crash = new Error('the client gave up');
    fail!(crash);
    expect(failures).toEqual([['consumer', crash]]);
    expect(await group.stop()).toEqual({ completed: true, failed: [] });
  });

  it('names no part when every stop succeeds', async () => {
    const group = createWorkerGroup({ logger, stopTimeoutMs: 60_000 });
    group.add('postgres', () => undefined);
    await group.start(createWorker('consumer', recordingBody([], 'consumer')));
    expect(await group.stop()).toEqual({ completed: true, failed: [] });
  });

  it('gives up after the bound, naming the part still stopping', async () => {
    jest.useFakeTimers();
    const log: string[] = [];
    const group = createWorkerGroup({ logger, stopTimeoutMs: 15_000 });
    group.add('postgres', () => void log.push('stop postgres'));
    // A batch retrying a database that does not answer: its stop never ends.
    group.add('consumer', () => new Promise<void>(() => undefined));
    const stopping = group.stop();
    await jest.advanceTimersByTimeAsync(15_000);
    expect(await stopping).toEqual({ completed: false, waitingFor: 'consumer' });
    expect(log).toEqual([]);
  });
});
