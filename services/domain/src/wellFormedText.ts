/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const nativeIsWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;

/**
 * Whether a string is well-formed UTF-16 (no lone surrogate), i.e. whether it has a UTF-8 form.
 * JSON can carry a lone surrogate (`"\ud800"`), but PostgreSQL text and jsonb refuse it (22P02),
 * Avro writes strings as UTF-8, and Kafka headers as UTF-8 too: such a string is refused where it
 * enters, as bad input, before it can fail a query deep inside (and, in the consumer, stall a
 * partition). Node 20 has String.prototype.isWellFormed; the regular expression is its stand-in.
 */
export function isWellFormedText(text: string): boolean {
  return nativeIsWellFormed !== undefined ? nativeIsWellFormed.call(text) : !LONE_SURROGATE.test(text);
}

/**
 * A string's length in characters (Unicode code points), as JSON Schema's `minLength` and
 * `maxLength` count it: an emoji is one, not the two UTF-16 units `.length` counts. Every bound on
 * text the API's schema also states counts with this, so the two never disagree.
 */
export function textLength(text: string): number {
  let length = 0;
  for (const _ of text) length += 1;
  return length;
}
