/**
 * Avro's wire encoding by hand, for specs that write what avsc's own types refuse to (a long
 * beyond 2^53). Not a test itself: jest runs only *.unit.spec.ts and *.int.spec.ts.
 */

/** Avro's zig-zag varint of a long. */
export function avroLong(n: bigint): Buffer {
  let value = n >= 0n ? n * 2n : -n * 2n - 1n;
  const bytes: number[] = [];
  while (value >= 0x80n) {
    bytes.push(Number(value & 0x7fn) | 0x80);
    value >>= 7n;
  }
  bytes.push(Number(value));
  return Buffer.from(bytes);
}

/** An Avro string: its byte length, then its UTF-8. */
export function avroString(text: string): Buffer {
  return Buffer.concat([avroLong(BigInt(Buffer.byteLength(text))), Buffer.from(text)]);
}
