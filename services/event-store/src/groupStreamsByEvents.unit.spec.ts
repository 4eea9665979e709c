import fc from 'fast-check';
import { groupStreamsByEvents, type StreamLength } from './groupStreamsByEvents';

const streams = (...lengths: number[]): StreamLength[] => lengths.map((events, i) => ({ streamId: `s${i}`, events: BigInt(events) }));

describe('groupStreamsByEvents', () => {
  it('reads short streams together up to the page size, and a longer one in pages of its own', () => {
    expect(groupStreamsByEvents(streams(1, 3, 12, 2, 2, 0, 4), 4)).toEqual([
      { kind: 'together', streamIds: ['s0', 's1'] },
      { kind: 'paged', streamId: 's2' },
      { kind: 'together', streamIds: ['s3', 's4'] },
      { kind: 'together', streamIds: ['s6'] },
    ]);
  });

  it('reads nothing for no streams or empty ones', () => {
    expect(groupStreamsByEvents([], 10)).toEqual([]);
    expect(groupStreamsByEvents(streams(0, 0), 10)).toEqual([]);
  });

  it('refuses a page size that is not a positive integer', () => {
    for (const size of [0, -1, 1.5, Number.NaN]) expect(() => groupStreamsByEvents(streams(1), size)).toThrow(RangeError);
  });

  it('reads every non-empty stream exactly once, in order, and no joint read exceeds the page', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 40 }), fc.integer({ min: 1, max: 30 }), (lengths, size) => {
        const input = streams(...lengths);
        const groups = groupStreamsByEvents(input, size);
        const read = groups.flatMap((group) => (group.kind === 'paged' ? [group.streamId] : group.streamIds));
        expect(read).toEqual(input.filter((s) => s.events > 0n).map((s) => s.streamId));
        const lengthOf = new Map(input.map((s) => [s.streamId, s.events]));
        for (const group of groups) {
          if (group.kind === 'paged') expect(lengthOf.get(group.streamId)!).toBeGreaterThan(BigInt(size));
          else expect(group.streamIds.reduce((sum, id) => sum + lengthOf.get(id)!, 0n)).toBeLessThanOrEqual(BigInt(size));
        }
      }),
    );
  });
});
