import { CompressionCodecs, CompressionTypes } from 'kafkajs';
import * as snappy from 'snappy';
import { registerCompressionCodecs } from './compressionCodecs';
import { snappyDecompress } from './xerialSnappy';

interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

const codecOf = (type: number) => (CompressionCodecs as unknown as Record<number, () => Codec>)[type]!();

describe('compression codecs registered with kafkajs', () => {
  beforeAll(() => registerCompressionCodecs());

  it.each([
    ['gzip', CompressionTypes.GZIP],
    ['snappy', CompressionTypes.Snappy],
    ['lz4', CompressionTypes.LZ4],
    ['zstd', CompressionTypes.ZSTD],
  ])('%s round-trips records larger than one block', async (_name, type) => {
    const records = Buffer.from(Array.from({ length: 20_000 }, (_, index) => `usage-${index % 97}-${index}`).join(','));
    const codec = codecOf(type);
    const compressed = await codec.compress({ buffer: records });
    expect(compressed.length).toBeLessThan(records.length);
    expect((await codec.decompress(compressed)).equals(records)).toBe(true);
  });

  it('reads raw snappy (librdkafka) as well as snappy-java framing', async () => {
    const records = Buffer.from('one raw snappy block, as librdkafka writes it');
    expect((await snappyDecompress(snappy, await snappy.compress(records))).equals(records)).toBe(true);
  });

  it('rethrows a decompression failure when the bytes around it are not a record batch', async () => {
    await expect(codecOf(CompressionTypes.GZIP).decompress(Buffer.from('not gzip at all'))).rejects.toThrow();
    await expect(codecOf(5).decompress(Buffer.from('codec 5 does not exist'))).rejects.toThrow(/not supported/);
  });

  it('registering twice keeps the same codecs', () => {
    const before = codecOf(CompressionTypes.ZSTD);
    registerCompressionCodecs();
    expect(codecOf(CompressionTypes.ZSTD)).toBe(before);
  });
});
