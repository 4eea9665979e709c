import { createKeyedSerializer, WriteQueueFullError } from './keyedSerializer';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

describe('createKeyedSerializer', () => {
  it('runs the tasks of one key one after another, in order, and other keys alongside', async () => {
    const serializer = createKeyedSerializer({ maxPending: 10 });
    const log: string[] = [];
    const gate = deferred();
    const first = serializer.run('a', async () => {
      log.push('a1 start');
      await gate.promise;
      log.push('a1 end');
      return 1;
    });
    const second = serializer.run('a', async () => {
      log.push('a2');
      return 2;
    });
    const other = serializer.run('b', async () => {
      log.push('b1');
      return 3;
    });
    await other;
    expect(log).toEqual(['a1 start', 'b1']);
    gate.resolve();
    expect(await Promise.all([first, second])).toEqual([1, 2]);
    expect(log).toEqual(['a1 start', 'b1', 'a1 end', 'a2']);
  });

  it('goes on after a task fails, and gives the failure to its caller only', async () => {
    const serializer = createKeyedSerializer({ maxPending: 10 });
    const failing = serializer.run('a', async () => {
      throw new Error('boom');
    });
    const next = serializer.run('a', async () => 'ok');
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('ok');
  });

  it('refuses a task beyond maxPending waiting for one key', async () => {
    const serializer = createKeyedSerializer({ maxPending: 2 });
    const gate = deferred();
    const running = serializer.run('a', () => gate.promise);
    const queued = serializer.run('a', async () => undefined);
    await expect(serializer.run('a', async () => undefined)).rejects.toBeInstanceOf(WriteQueueFullError);
    await expect(serializer.run('b', async () => 'b')).resolves.toBe('b');
    gate.resolve();
    await Promise.all([running, queued]);
    // Once drained, the key takes tasks again.
    await expect(serializer.run('a', async () => 'again')).resolves.toBe('again');
  });
});
