import { groupLagFromOffsets } from './consumerGroupLag';

describe('a consumer group’s lag from the broker’s offsets', () => {
  const ends = [
    { partition: 1, low: '0', high: '40' },
    { partition: 0, low: '100', high: '250' },
  ];

  it('is each partition’s end less the committed offset, in partition order', () => {
    expect(groupLagFromOffsets([{ partition: 0, offset: '200' }, { partition: 1, offset: '40' }], ends, true)).toEqual([
      { partition: 0, lag: 50 },
      { partition: 1, lag: 0 },
    ]);
  });

  it('counts from the log’s start or its end where nothing was committed, as the group would start', () => {
    const none = [{ partition: 0, offset: '-1' }];
    expect(groupLagFromOffsets(none, ends, true)).toEqual([
      { partition: 0, lag: 150 },
      { partition: 1, lag: 40 },
    ]);
    expect(groupLagFromOffsets(none, ends, false)).toEqual([
      { partition: 0, lag: 0 },
      { partition: 1, lag: 0 },
    ]);
  });

  it('counts from where the consumer resets to when the committed offset is before what retention deleted', () => {
    expect(groupLagFromOffsets([{ partition: 0, offset: '30' }], ends, true)[0]).toEqual({ partition: 0, lag: 150 });
    expect(groupLagFromOffsets([{ partition: 0, offset: '30' }], ends, false)[0]).toEqual({ partition: 0, lag: 0 });
    expect(groupLagFromOffsets([{ partition: 0, offset: '100' }], ends, false)[0]).toEqual({ partition: 0, lag: 150 });
  });
});
