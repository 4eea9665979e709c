import { gunzip, gzip } from 'node:zlib';
import { promisify } from 'node:util';
import { CompressionCodecs, CompressionTypes } from 'kafkajs';
import { standInRecords } from './undecodableBatch';
import { snappyCompress, snappyDecompress } from './xerialSnappy';

/** What kafkajs calls with a batch: `compress` gets its Encoder, `decompress` the compressed records. */
interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

interface Compression {
  compress(buffer: Buffer): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

/**
 * Each codec's package is loaded on first use, once per process: a package that cannot load here
 * (no binary for this platform) costs only its own codec, whose batches then stop their
 * partitions visibly (see undecodableBatch.ts) instead of the process failing to start.
 */
function once<T>(load: () => Promise<T>): () => Promise<T> {
  let loaded: Promise<T> | undefined;
  return () => (loaded ??= load());
}

type ZstdModule = Awaited<ReturnType<(typeof import('@hpcc-js/wasm-zstd', { with: { 'resolution-mode': 'import' } }))['Zstd']['load']>>;
// A real dynamic import: the package is an ES module, this one CommonJS.
const loadZstd = once<ZstdModule>(() => import('@hpcc-js/wasm-zstd').then(({ Zstd }) => Zstd.load()));
const loadLz4 = once(() => import('lz4-napi'));
const loadSnappy = once(() => import('snappy'));

/** zstd's own default level, as Kafka's producer uses. */
const ZSTD_LEVEL = 3;
const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/**
 * The codecs, each from a maintained package that installs from the npm registry alone: snappy and
 * lz4 are napi-rs builds whose per-platform binaries are npm packages themselves, zstd is the
 * reference C library compiled to WebAssembly. Kafka frames lz4 as the standard LZ4 frame, and
 * zstd as a streaming frame without a content size (which this decoder reads).
 */
const compressions: Record<'gzip' | 'snappy' | 'lz4' | 'zstd', Compression> = {
  gzip: { compress: (buffer) => gzipAsync(buffer), decompress: (buffer) => gunzipAsync(buffer) },
  snappy: {
    compress: async (buffer) => snappyCompress(await loadSnappy(), buffer),
    decompress: async (buffer) => snappyDecompress(await loadSnappy(), buffer),
  },
  lz4: {
    compress: async (buffer) => (await loadLz4()).compressFrame(buffer),
    decompress: async (buffer) => (await loadLz4()).decompressFrame(buffer),
  },
  zstd: {
    compress: async (buffer) => Buffer.from((await loadZstd()).compress(buffer, ZSTD_LEVEL)),
    decompress: async (buffer) => Buffer.from((await loadZstd()).decompress(buffer)),
  },
};

const TYPES = {
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
} as const;

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A batch that fails to decompress becomes a stand-in the consumer can report and step over. */
function guarded(type: number, name: string, compression: Compression | undefined): Codec {
  return {
    async compress(encoder) {
      if (compression === undefined) throw new Error(`compression codec ${name} is not supported`);
      return compression.compress(encoder.buffer);
    },
    async decompress(buffer) {
      let failure: unknown;
      try {
        if (compression !== undefined) return await compression.decompress(buffer);
        failure = new Error(`compression codec ${name} (attribute bits ${type}) is not supported`);
      } catch (error) {
        failure = error;
      }
      const standIn = standInRecords(buffer, type, `${name} batch could not be decompressed: ${reasonOf(failure)}`);
      if (standIn === undefined) throw failure;
      return standIn;
    },
  };
}

let registered = false;

/**
 * Registers gzip, snappy, lz4 and zstd with kafkajs, which keeps codecs in one table per process,
 * and guards every codec slot (the three values Kafka has not assigned too). Idempotent; every
 * Kafka client of Tally is made by createKafka(), which calls it.
 */
export function registerCompressionCodecs(): void {
  if (registered) return;
  registered = true;
  const table = CompressionCodecs as unknown as Record<number, () => Codec>;
  for (const [name, type] of Object.entries(TYPES)) {
    const codec = guarded(type, name, compressions[name as keyof typeof TYPES]);
    table[type] = () => codec;
  }
  for (const type of [5, 6, 7]) {
    const codec = guarded(type, `unknown-${type}`, undefined);
    table[type] = () => codec;
  }
}

export const COMPRESSION_NAMES = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
export type CompressionName = (typeof COMPRESSION_NAMES)[number];

/** The kafkajs constant for a codec name of the configuration (`TALLY_KAFKA_COMPRESSION`). */
export function compressionType(name: CompressionName): CompressionTypes {
  return name === 'none' ? CompressionTypes.None : TYPES[name];
}
