import { InvalidEventStoreRequestError } from './errors';
import type { ExpectedRevision } from './eventStore';

/** The text form append_events takes and reports back: a keyword, or the last revision in decimal. */
export function serializeExpectedRevision(expected: ExpectedRevision): string {
  if (typeof expected === 'bigint') {
    if (expected < 0n) throw new InvalidEventStoreRequestError(`expected revision must not be negative; got ${expected}`);
    return expected.toString();
  }
  if (expected === 'any' || expected === 'no_stream' || expected === 'stream_exists') return expected;
  throw new InvalidEventStoreRequestError(`unknown expected revision ${JSON.stringify(expected)}`);
}

export function parseExpectedRevision(text: string): ExpectedRevision {
  return text === 'any' || text === 'no_stream' || text === 'stream_exists' ? text : BigInt(text);
}
