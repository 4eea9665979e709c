import { CompressionTypes } from 'kafkajs';
import { registerCompressionCodecs } from './compressionCodecs';
import { standInRecords, undecodableBatchOf } from './undecodableBatch';

// kafkajs's own record batch decoder, which calls the registered codecs: the stand-in must be
// what it reads as records at the batch's offsets.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Decoder = require('kafkajs/src/protocol/decoder') as new (buffer: Buffer) => unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const decodeRecordBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder') as (decoder: unknown) => Promise<{
  records: Array<{ offset: string; key: Buffer | null; value: Buffer | null }>;
}>;

/** A v2 record batch header (61 bytes) for `payload`, with the codec bits and counts given. */
function recordBatch({ baseOffset, codec, records, lastOffsetDelta, payload }: { baseOffset: bigint; codec: number; records: number; lastOffsetDelta: number; payload: Buffer }) {
  const header = Buffer.alloc(61);
  header.writeBigInt64BE(baseOffset, 0);
  header.writeInt32BE(49 + payload.length, 8);
  header.writeInt8(2, 16);
  header.writeInt16BE(codec, 21);
  header.writeInt32BE(lastOffsetDelta, 23);
  header.writeInt32BE(records, 57);
  return Buffer.concat([header, payload]);
}

describe('stand-ins for record batches that cannot be decompressed', () => {
  beforeAll(() => registerCompressionCodecs());

  it('gives kafkajs one record per declared record, at the batch offsets, the raw batch in the first', async () => {
    // Compaction left a gap: 3 records over offsets 40..44.
    const batch = recordBatch({ baseOffset: 40n, codec: CompressionTypes.GZIP, records: 3, lastOffsetDelta: 4, payload: Buffer.from('not gzip') });
    const { records } = await decodeRecordBatch(new Decoder(batch));
    expect(records.map((record) => record.offset)).toEqual(['40', '41', '44']);
    for (const record of records) expect(undecodableBatchOf(record)).toBeDefined();
    const info = undecodableBatchOf(records[0]!)!;
    expect(info).toMatchObject({ baseOffset: '40', lastOffset: '44', records: 3, codec: 'gzip' });
    expect(info.reason).toMatch(/^gzip batch could not be decompressed: /);
    expect(info.raw.equals(batch)).toBe(true);
  });

  it('stands in for a codec Kafka has not assigned', async () => {
    const batch = recordBatch({ baseOffset: 7n, codec: 6, records: 1, lastOffsetDelta: 0, payload: Buffer.from('???') });
    const { records } = await decodeRecordBatch(new Decoder(batch));
    expect(undecodableBatchOf(records[0]!)).toMatchObject({ baseOffset: '7', codec: 'unknown-6', reason: expect.stringMatching(/not supported/) });
  });

  it('is never a real message, whatever its bytes', () => {
    expect(undecodableBatchOf({ value: Buffer.from('anything') })).toBeUndefined();
    expect(undecodableBatchOf({ value: null })).toBeUndefined();
  });

  it('trusts no header that does not match the bytes', () => {
    const batch = recordBatch({ baseOffset: 1n, codec: CompressionTypes.ZSTD, records: 2, lastOffsetDelta: 1, payload: Buffer.from('xyz') });
    const payload = batch.subarray(61);
    expect(standInRecords(payload, CompressionTypes.ZSTD, 'r')).toBeDefined();
    expect(standInRecords(payload, CompressionTypes.LZ4, 'r')).toBeUndefined(); // other codec bits
    expect(standInRecords(Buffer.from(payload), CompressionTypes.ZSTD, 'r')).toBeUndefined(); // not inside a batch
    const lying = recordBatch({ baseOffset: 1n, codec: CompressionTypes.ZSTD, records: 5, lastOffsetDelta: 1, payload: Buffer.from('xyz') });
    expect(standInRecords(lying.subarray(61), CompressionTypes.ZSTD, 'r')).toBeUndefined(); // more records than offsets
  });
});
