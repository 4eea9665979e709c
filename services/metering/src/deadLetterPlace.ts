/**
 * Where a dead letter sits on the dead-letter topic, as the API, the console and `tally` name it:
 * a partition and an offset, decimal without leading zeros (so one place has one spelling), and
 * together `<partition>:<offset>` (neither contains a colon). Written once for every reader.
 */
export const DEAD_LETTER_PARTITION_PATTERN = '^(0|[1-9][0-9]{0,8})$';
export const DEAD_LETTER_OFFSET_PATTERN = '^(0|[1-9][0-9]{0,17})$';
export const DEAD_LETTER_PLACE_PATTERN = `${DEAD_LETTER_PARTITION_PATTERN.slice(0, -1)}:${DEAD_LETTER_OFFSET_PATTERN.slice(1)}`;

/**
 * The most letters one send-back picks by place (the API's `letters`, `tally redrive --letter`):
 * the run reads the span between the picked places, so a pick is for a few letters understood
 * one by one; more go by error code, or in another run.
 */
export const MAX_PICKED_DEAD_LETTERS = 100;

const partitionPattern = new RegExp(DEAD_LETTER_PARTITION_PATTERN);
const offsetPattern = new RegExp(DEAD_LETTER_OFFSET_PATTERN);
const placePattern = new RegExp(DEAD_LETTER_PLACE_PATTERN);

export function isDeadLetterPartition(text: string): boolean {
  return partitionPattern.test(text);
}

export function isDeadLetterOffset(text: string): boolean {
  return offsetPattern.test(text);
}

/** `<partition>:<offset>`, as `letters` of a send-back and `tally redrive --letter` take it. */
export function isDeadLetterPlace(text: string): boolean {
  return placePattern.test(text);
}
