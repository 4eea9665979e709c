import type { AppendManyOptions, AppendRequest, AppendResult } from './eventStore';
import { groupAppends } from './groupAppends';

/** A store whose appendMany records each call and answers only when released (with results or an error). */
function heldStore() {
  const calls: { streams: string[]; markers: readonly string[]; release: (outcome?: Error) => void }[] = [];
  const store = {
    appendMany: (requests: readonly AppendRequest[], options: AppendManyOptions = {}) =>
      new Promise<AppendResult[]>((resolve, reject) => {
        calls.push({
          streams: requests.map((request) => request.streamId),
          markers: options.markers ?? [],
          release: (error) =>
            error
              ? reject(error)
              : resolve(requests.map((request, i) => ({ streamId: request.streamId, nextExpectedRevision: BigInt(i), position: BigInt(calls.length * 100 + i), idempotent: false }))),
        });
      }),
  };
  return { store, calls };
}

const request = (streamId: string, events = 1): AppendRequest => ({
  streamId,
  expectedRevision: 'any',
  events: Array.from({ length: events }, (_, i) => ({ id: `${streamId}-${i}`, type: 'Charged', data: {} })),
});
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('groupAppends', () => {
  it('sends a call that finds the store idle at once, and the calls that arrive meanwhile as one, each answered with its own results', async () => {
    const { store, calls } = heldStore();
    const grouped = groupAppends(store);
    const first = grouped.appendMany([request('a')], { markers: ['m-a'] });
    await settle();
    expect(calls.map((call) => call.streams)).toEqual([['a']]);
    const second = grouped.appendMany([request('b'), request('c')], { markers: ['m-b'] });
    const third = grouped.appendMany([request('d')]);
    await settle();
    expect(calls).toHaveLength(1);
    calls[0]!.release();
    await settle();
    expect(calls.map((call) => call.streams)).toEqual([['a'], ['b', 'c', 'd']]);
    expect(calls[1]!.markers).toEqual(['m-b']);
    calls[1]!.release();
    expect((await first).map((result) => result.streamId)).toEqual(['a']);
    expect((await second).map((result) => [result.streamId, result.position])).toEqual([
      ['b', 200n],
      ['c', 201n],
    ]);
    expect((await third).map((result) => [result.streamId, result.position])).toEqual([['d', 202n]]);
  });

  it('keeps two calls on one stream, or with one marker, in separate groups, in arrival order', async () => {
    const { store, calls } = heldStore();
    const grouped = groupAppends(store);
    const pending = [
      grouped.appendMany([request('x')]),
      grouped.appendMany([request('a')]),
      grouped.appendMany([request('a')]),
      grouped.appendMany([request('b')], { markers: ['m'] }),
      grouped.appendMany([request('c')], { markers: ['m'] }),
    ];
    for (let round = 0; round < 4; round += 1) {
      await settle();
      calls[round]!.release();
    }
    await Promise.all(pending);
    expect(calls.map((call) => call.streams)).toEqual([['x'], ['a'], ['a', 'b'], ['c']]);
  });

  it('stops a group at maxEvents, and still sends a larger call alone', async () => {
    const { store, calls } = heldStore();
    const grouped = groupAppends(store, { maxEvents: 5 });
    const pending = [grouped.appendMany([request('x')]), grouped.appendMany([request('a', 3)]), grouped.appendMany([request('b', 3)]), grouped.appendMany([request('c', 9)])];
    for (let round = 0; round < 4; round += 1) {
      await settle();
      calls[round]!.release();
    }
    await Promise.all(pending);
    expect(calls.map((call) => call.streams)).toEqual([['x'], ['a'], ['b'], ['c']]);
  });

  it('sends every member of a failed group again alone, so that an error reaches only its own caller', async () => {
    const { store, calls } = heldStore();
    const grouped = groupAppends(store);
    const busy = grouped.appendMany([request('x')]);
    const good = grouped.appendMany([request('a')]);
    const conflicting = grouped.appendMany([request('b')]);
    await settle();
    calls[0]!.release();
    await settle();
    calls[1]!.release(new Error('wrong expected revision on b'));
    await settle();
    expect(calls.map((call) => call.streams)).toEqual([['x'], ['a', 'b'], ['a'], ['b']]);
    calls[2]!.release();
    calls[3]!.release(new Error('wrong expected revision on b'));
    await busy;
    expect((await good).map((result) => result.streamId)).toEqual(['a']);
    await expect(conflicting).rejects.toThrow('wrong expected revision on b');
  });

  it('refuses a group size that is not a positive integer', () => {
    expect(() => groupAppends(heldStore().store, { maxEvents: 0 })).toThrow(RangeError);
  });
});
