/** The raw snappy block codec (the `snappy` package's functions). */
interface SnappyBlocks {
  compress(input: Buffer): Promise<Buffer>;
  uncompress(input: Buffer, options: { asBuffer: true }): Promise<string | Buffer>;
}

/**
 * Kafka's Java client writes snappy through snappy-java's SnappyOutputStream: a 16-byte header
 * (magic, version, compatible version) followed by blocks, each a 4-byte big-endian length and a
 * raw snappy block. librdkafka and most other clients write the raw block alone. Both are read;
 * Tally writes the framed form, which every client (Java included) reads.
 */
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_LENGTH = 16;
const XERIAL_VERSION = 1;
const XERIAL_COMPATIBLE_VERSION = 1;
/** snappy-java's default block size; a block of raw snappy is bounded anyway, keep Java's habit. */
const BLOCK_SIZE = 32 * 1024;

function isXerialFramed(buffer: Buffer): boolean {
  return buffer.length >= XERIAL_HEADER_LENGTH && buffer.subarray(0, XERIAL_MAGIC.length).equals(XERIAL_MAGIC);
}

export async function snappyDecompress(snappy: SnappyBlocks, buffer: Buffer): Promise<Buffer> {
  const uncompressBlock = async (block: Buffer) => (await snappy.uncompress(block, { asBuffer: true })) as Buffer;
  if (!isXerialFramed(buffer)) return uncompressBlock(buffer);
  const blocks: Buffer[] = [];
  let offset = XERIAL_HEADER_LENGTH;
  while (offset < buffer.length) {
    if (offset + 4 > buffer.length) throw new Error(`snappy-java block length cut short at byte ${offset}`);
    const length = buffer.readInt32BE(offset);
    offset += 4;
    if (length < 0 || offset + length > buffer.length) throw new Error(`snappy-java block of ${length} bytes overruns the ${buffer.length}-byte payload`);
    blocks.push(await uncompressBlock(buffer.subarray(offset, offset + length)));
    offset += length;
  }
  return Buffer.concat(blocks);
}

export async function snappyCompress(snappy: SnappyBlocks, buffer: Buffer): Promise<Buffer> {
  const header = Buffer.alloc(XERIAL_HEADER_LENGTH);
  XERIAL_MAGIC.copy(header);
  header.writeInt32BE(XERIAL_VERSION, 8);
  header.writeInt32BE(XERIAL_COMPATIBLE_VERSION, 12);
  const parts: Buffer[] = [header];
  for (let offset = 0; offset < buffer.length; offset += BLOCK_SIZE) {
    const block = await snappy.compress(buffer.subarray(offset, offset + BLOCK_SIZE));
    const length = Buffer.alloc(4);
    length.writeInt32BE(block.length);
    parts.push(length, block);
  }
  return Buffer.concat(parts);
}
