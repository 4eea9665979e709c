import { eventsInParts } from './sendParts';

/** `tally send -n`'s events, made and encoded a part at a time rather than all before the first send. */
describe('eventsInParts', () => {
  const made: number[] = [];
  const parts = (count: number, partBytes: number) =>
    eventsInParts({
      count,
      partBytes,
      eventAt: (index) => {
        made.push(index);
        return { index };
      },
      // Ten bytes an event: a part of 30 bytes holds three.
      encode: async ({ index }) => Buffer.from(String(index).padStart(10, '0')),
    });

  beforeEach(() => {
    made.length = 0;
  });

  it('makes only the part pulled: the first of a million events is one part of them', async () => {
    const iterator = parts(1_000_000, 30)[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    expect(first.value!.map(({ event }) => event.index)).toEqual([0, 1, 2]);
    expect(made).toEqual([0, 1, 2]);
    await iterator.next();
    expect(made).toEqual([0, 1, 2, 3, 4, 5]);
    await iterator.return?.(undefined);
  });

  it('yields every event once, in order, each with its encoded value, the last part holding the rest', async () => {
    const all: Array<{ index: number; value: string }> = [];
    const sizes: number[] = [];
    for await (const part of parts(7, 30)) {
      sizes.push(part.length);
      all.push(...part.map(({ event, value }) => ({ index: event.index, value: value.toString() })));
    }
    expect(sizes).toEqual([3, 3, 1]);
    expect(all).toEqual(Array.from({ length: 7 }, (_, index) => ({ index, value: String(index).padStart(10, '0') })));
  });

  it('puts an event larger than a part alone in its part, never yielding an empty one', async () => {
    const sizes: number[] = [];
    for await (const part of parts(3, 4)) sizes.push(part.length);
    expect(sizes).toEqual([1, 1, 1]);
  });
});
