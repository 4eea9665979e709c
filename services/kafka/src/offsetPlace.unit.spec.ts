import { offsetPlace } from './offsetPlace';

describe('offsetPlace', () => {
  const watermarks = [
    { partition: 0, low: '2', high: '5' },
    { partition: 1, low: '0', high: '0' },
  ];

  it('places an offset between the low watermark and the high one, exclusive', () => {
    expect(offsetPlace(watermarks, 0, '2')).toEqual({ kind: 'within', low: 2n, high: 5n });
    expect(offsetPlace(watermarks, 0, '4')).toEqual({ kind: 'within', low: 2n, high: 5n });
  });

  it('refuses a partition the topic has not, an offset at or past the end, and one retention deleted', () => {
    expect(offsetPlace(watermarks, 2, '0')).toEqual({ kind: 'no_partition', partitions: 2 });
    expect(offsetPlace(watermarks, 0, '5')).toEqual({ kind: 'outside', why: 'the partition ends before it (next offset 5)' });
    expect(offsetPlace(watermarks, 1, '0')).toEqual({ kind: 'outside', why: 'the partition ends before it (next offset 0)' });
    expect(offsetPlace(watermarks, 0, '1')).toEqual({ kind: 'outside', why: "the partition's retention has deleted it (earliest offset 2)" });
    // Beyond 2^53: compared exactly.
    expect(offsetPlace([{ partition: 0, low: '0', high: '9007199254740993' }], 0, '9007199254740993')).toMatchObject({ kind: 'outside' });
  });
});
