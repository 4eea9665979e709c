import { DEAD_LETTER_PLACE_PATTERN, isDeadLetterOffset, isDeadLetterPartition, isDeadLetterPlace } from './deadLetterPlace';

describe("a dead letter's place", () => {
  it('is decimal without leading zeros, partition and offset joined by a colon', () => {
    expect(DEAD_LETTER_PLACE_PATTERN).toBe('^(0|[1-9][0-9]{0,8}):(0|[1-9][0-9]{0,17})$');
    expect(['0:0', '2:17', '999999999:999999999999999999'].filter(isDeadLetterPlace)).toHaveLength(3);
    expect(['0:01', '01:0', '0-1', '0@1', '0:', ':1', '-1:0', '1000000000:0', '0:1000000000000000000', '0:1.5'].filter(isDeadLetterPlace)).toEqual([]);
    expect([isDeadLetterPartition('0'), isDeadLetterPartition('01'), isDeadLetterOffset('17'), isDeadLetterOffset('last')]).toEqual([true, false, true, false]);
  });
});
