import { eventsInParts } from './sendParts';

/** `tally send -n`'s events, made and encoded a part at a time rather than all before the first send. */
describe('eventsInParts', () => {
  const made: number[] = [];
  const parts = (count: number, partBytes: number, sizeOf = (value: Buffer) => value.length) =>
    eventsInParts({
      count,
      partBytes,
      sizeOf,
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

  it('makes only the part pulled (and the first event of the next, which did not fit): the first of a million events is one part of them', async () => {
    const iterator = parts(1_000_000, 30)[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    expect(first.value!.map(({ event }) => event.index)).toEqual([0, 1, 2]);
    expect(made).toEqual([0, 1, 2, 3]);
    await iterator.next();
    expect(made).toEqual([0, 1, 2, 3, 4, 5, 6]);
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

  it('fills a part up to partBytes as sizeOf measures an event, never past it: one part, one send', async () => {
    // 10 bytes of value and 5 of a send's own per event: 45 bytes hold three, 44 two.
    const sizes = async (partBytes: number) => {
      const found: number[] = [];
      for await (const part of parts(6, partBytes, (value) => value.length + 5)) found.push(part.length);
      return found;
    };
    expect(await sizes(45)).toEqual([3, 3]);
    expect(await sizes(44)).toEqual([2, 2, 2]);
  });

  it('puts an event larger than a part alone in its part, never yielding an empty one', async () => {
    const sizes: number[] = [];
    for await (const part of parts(3, 4)) sizes.push(part.length);
    expect(sizes).toEqual([1, 1, 1]);
  });
});
