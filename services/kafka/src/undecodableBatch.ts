/**
 * A record batch whose records cannot be decompressed (a codec this process lacks, corrupt bytes)
 * makes kafkajs fail the whole fetch: every partition the fetch covered stalls, and nothing says
 * which batch is to blame. The codecs registered by registerCompressionCodecs() catch that failure
 * and hand kafkajs a stand-in instead: as many empty records as the batch declares, at its
 * offsets, the first carrying the raw batch. kafkajs then delivers the batch to its partition like
 * any other, the other partitions go on, and the consumer recognises the stand-in with
 * undecodableBatchOf() and stops that partition where it is, visibly (see services/metering).
 *
 * The stand-ins are recognised by the memory they live in (a WeakMap keyed by their ArrayBuffer),
 * not by anything in the records, so no producer can forge one.
 */
export interface UndecodableBatch {
  /** First offset of the batch (the record batch's base offset). */
  readonly baseOffset: string;
  /** Last offset the batch covers. */
  readonly lastOffset: string;
  readonly records: number;
  /** kafkajs's name of the codec in the batch's attributes (0-7). */
  readonly codec: string;
  readonly reason: string;
  /** The whole record batch as the broker sent it (header and compressed records). */
  readonly raw: Buffer;
}

/** Record batch v2 header: base offset (8), length (4), then 49 bytes up to and including the record count. */
const BATCH_HEADER_LENGTH = 61;
const LENGTH_OFFSET = 8;
const MAGIC_OFFSET = 16;
const ATTRIBUTES_OFFSET = 21;
const LAST_OFFSET_DELTA_OFFSET = 23;
const RECORD_COUNT_OFFSET = 57;
/** Bytes of a batch after its length field, not counting the records. */
const HEADER_AFTER_LENGTH = BATCH_HEADER_LENGTH - LENGTH_OFFSET - 4;
const CODEC_MASK = 0x07;
/** No real batch holds more (records are at least 7 bytes and a fetch is bounded); above it the header is not trusted. */
const MAX_RECORDS = 1_000_000;

const CODEC_NAMES = ['none', 'gzip', 'snappy', 'lz4', 'zstd', 'unknown-5', 'unknown-6', 'unknown-7'] as const;

const standIns = new WeakMap<ArrayBufferLike, UndecodableBatch>();

/** The batch a consumed message stands in for, when its batch could not be decoded. */
export function undecodableBatchOf(message: { readonly value: Buffer | null }): UndecodableBatch | undefined {
  return message.value === null ? undefined : standIns.get(message.value.buffer);
}

function zigzagVarint(value: number): number[] {
  let unsigned = value >= 0 ? value * 2 : -value * 2 - 1;
  const bytes: number[] = [];
  while (unsigned >= 0x80) {
    bytes.push((unsigned & 0x7f) | 0x80);
    unsigned = Math.floor(unsigned / 128);
  }
  bytes.push(unsigned);
  return bytes;
}

/** One v2 record: attributes 0, timestamp delta 0, the given offset delta, null key, the value, no headers. */
function encodeRecord(offsetDelta: number, value: Buffer): Buffer {
  const body = Buffer.concat([
    Buffer.from([0, ...zigzagVarint(0), ...zigzagVarint(offsetDelta), ...zigzagVarint(-1), ...zigzagVarint(value.length)]),
    value,
    Buffer.from(zigzagVarint(0)),
  ]);
  return Buffer.concat([Buffer.from(zigzagVarint(body.length)), body]);
}

/**
 * The batch header in front of `compressed`, when the bytes there are that batch's header. kafkajs
 * passes a codec a slice of the fetch response (Buffer.slice shares memory), so the 61 header bytes
 * lie just before it; three of their fields are checked against the slice before anything is trusted.
 */
function headerBefore(compressed: Buffer, codecType: number): Buffer | undefined {
  if (compressed.byteOffset < BATCH_HEADER_LENGTH) return undefined;
  const header = Buffer.from(compressed.buffer, compressed.byteOffset - BATCH_HEADER_LENGTH, BATCH_HEADER_LENGTH);
  if (header.readInt8(MAGIC_OFFSET) !== 2) return undefined;
  if ((header.readInt16BE(ATTRIBUTES_OFFSET) & CODEC_MASK) !== codecType) return undefined;
  if (header.readInt32BE(LENGTH_OFFSET) !== HEADER_AFTER_LENGTH + compressed.length) return undefined;
  return header;
}

/**
 * The records kafkajs decodes instead of the batch it could not read; undefined when the bytes
 * around `compressed` do not prove to be a record batch (the caller then rethrows the error).
 */
export function standInRecords(compressed: Buffer, codecType: number, reason: string): Buffer | undefined {
  const header = headerBefore(compressed, codecType);
  if (header === undefined) return undefined;
  const records = header.readInt32BE(RECORD_COUNT_OFFSET);
  const lastOffsetDelta = header.readInt32BE(LAST_OFFSET_DELTA_OFFSET);
  if (records < 1 || records > MAX_RECORDS || lastOffsetDelta < records - 1) return undefined;
  const raw = Buffer.concat([header, compressed]);
  const baseOffset = header.readBigInt64BE(0);
  const parts: Buffer[] = [];
  const empty = Buffer.alloc(0);
  for (let index = 0; index < records; index += 1) {
    // The last record takes the batch's last offset, so that committing past the stand-in commits
    // past the whole batch even when compaction left gaps in it.
    const offsetDelta = index === records - 1 ? lastOffsetDelta : index;
    parts.push(encodeRecord(offsetDelta, index === 0 ? raw : empty));
  }
  const size = parts.reduce((sum, part) => sum + part.length, 0);
  // Its own ArrayBuffer (never Node's shared pool): the records' values are slices of it, and
  // that is how undecodableBatchOf() knows them.
  const standIn = Buffer.from(new ArrayBuffer(size));
  let at = 0;
  for (const part of parts) at += part.copy(standIn, at);
  standIns.set(standIn.buffer, {
    baseOffset: baseOffset.toString(),
    lastOffset: (baseOffset + BigInt(lastOffsetDelta)).toString(),
    records,
    codec: CODEC_NAMES[codecType] ?? String(codecType),
    reason,
    raw,
  });
  return standIn;
}
