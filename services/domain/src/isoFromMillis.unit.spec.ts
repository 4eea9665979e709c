import fc from 'fast-check';
import { isoFromMillis } from './isoFromMillis';

describe('isoFromMillis', () => {
  it("writes every millisecond of a four-digit year as Date's toISOString does", () => {
    const edges = ['1000-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z', '1970-01-01T00:00:00.000Z', '1969-12-31T23:59:59.999Z', '2000-02-29T12:34:56.789Z', '1900-03-01T00:00:00.000Z', '2100-02-28T23:59:59.999Z', '2200-01-01T00:00:00.000Z'];
    for (const iso of edges) expect(isoFromMillis(Date.parse(iso))).toBe(iso);
    fc.assert(
      fc.property(fc.integer({ min: Date.parse('1000-01-01T00:00:00.000Z'), max: Date.parse('9999-12-31T23:59:59.999Z') }), (millis) => {
        expect(isoFromMillis(millis)).toBe(new Date(millis).toISOString());
      }),
      { numRuns: 20_000 },
    );
  });

  it("gives Date's own answer, or its RangeError, for a fraction of a millisecond and beyond four-digit years", () => {
    expect(isoFromMillis(1_767_225_600_000.7)).toBe(new Date(1_767_225_600_000.7).toISOString());
    expect(isoFromMillis(Date.parse('0999-12-31T23:59:59.999Z'))).toBe('0999-12-31T23:59:59.999Z');
    expect(isoFromMillis(Date.parse('+010000-01-01T00:00:00.000Z'))).toBe('+010000-01-01T00:00:00.000Z');
    expect(() => isoFromMillis(1e20)).toThrow(RangeError);
    expect(() => isoFromMillis(Number.NaN)).toThrow(RangeError);
  });
});
