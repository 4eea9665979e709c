import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import { ConfigResourceTypes, type Admin } from 'kafkajs';
import { stackConfig } from './stackConfig';
import { tallyHome } from './tallyHome';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/** The jars `stack:up` resolved for the local broker; Kafka's own tools run from them. */
export function kafkaLibsDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(tallyHome(env), 'kafka', 'libs');
}

/** Runs one of Kafka's Java tools (as scripts/lib/kafka.sh does) and resolves with its output once it exits 0. */
export async function runKafkaTool(mainClass: string, args: readonly string[], { input = '', timeoutMs = 60_000 } = {}): Promise<string> {
  const libs = kafkaLibsDir();
  if (!existsSync(libs)) throw new Error(`Kafka's jars are not in ${libs}; run npm run stack:up first`);
  const child = spawn(
    'java',
    [
      '-Xmx256m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      `-Dlog4j2.configurationFile=${path.join(REPO_ROOT, 'infra', 'kafka', 'log4j2-tools.xml')}`,
      '-cp',
      `${libs}/*`,
      mainClass,
      ...args,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stdin.end(input);
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${mainClass} did not finish within ${timeoutMs} ms: ${output}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`${mainClass} exited with ${String(code)}: ${output}`));
    });
  });
}

export interface ConsoleProduceOptions {
  readonly topic: string;
  /** `--compression-codec` of Kafka's console producer: none, gzip, snappy, lz4 or zstd. */
  readonly codec: string;
  readonly records: ReadonlyArray<{ readonly key: string; readonly value: string }>;
}

/**
 * Produces with Kafka's own console producer (org.apache.kafka.tools.ConsoleProducer, the Java
 * client), as a product backend on the JVM would: keyed records, acks=all, the codec asked for,
 * records lingering so that batches hold many before compression.
 */
export async function produceWithConsoleProducer(options: ConsoleProduceOptions): Promise<void> {
  const separator = '\t';
  const input = options.records
    .map(({ key, value }) => {
      if (`${key}${value}`.includes('\n') || key.includes(separator)) throw new Error('keys and values must be single lines, keys without tabs');
      return `${key}${separator}${value}\n`;
    })
    .join('');
  // The tool closes its producer (flushing every batch) at the end of its input.
  await runKafkaTool(
    'org.apache.kafka.tools.ConsoleProducer',
    [
      '--bootstrap-server',
      stackConfig.kafkaBrokers.join(','),
      '--topic',
      options.topic,
      '--compression-codec',
      options.codec,
      '--property',
      'parse.key=true',
      '--property',
      `key.separator=${separator}`,
      '--producer-property',
      'acks=all',
      '--producer-property',
      'linger.ms=200',
    ],
    { input },
  );
}

/** The directory of a partition's log on the local broker (its log.dirs, asked of the broker). */
export async function partitionLogDir(admin: Admin, topic: string, partition: number): Promise<string> {
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.BROKER, name: '1', configNames: ['log.dirs'] }],
  });
  const logDirs = resources[0]?.configEntries.find((entry) => entry.configName === 'log.dirs')?.configValue;
  if (logDirs === undefined || logDirs === null) throw new Error('the broker did not tell its log.dirs');
  for (const dir of logDirs.split(',')) {
    const candidate = path.join(dir, `${topic}-${partition}`);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`no log directory of ${topic}-${partition} under ${logDirs}`);
}

/** Kafka's DumpLogSegments over every segment of a partition: one line per batch, with its codec. */
export async function dumpPartitionLog(admin: Admin, topic: string, partition: number): Promise<string> {
  const dir = await partitionLogDir(admin, topic, partition);
  const segments = readdirSync(dir)
    .filter((file) => file.endsWith('.log'))
    .map((file) => path.join(dir, file));
  return runKafkaTool('kafka.tools.DumpLogSegments', ['--files', segments.join(',')]);
}

const GZIP_MAGIC = [0x1f, 0x8b];
/** A record batch's header (v2): base offset, length, ..., up to its first record. */
const BATCH_HEADER_BYTES = 61;

/**
 * Breaks the gzip header of the batch that starts at `baseOffset` in the partition's log on the
 * local broker's disk, as a failing disk or a buggy producer would. The broker serves log bytes as
 * they are, and kafkajs checks no CRC, so a consumer meets a batch it cannot decompress. Throws
 * when there is no such batch or it is not gzip.
 */
export async function corruptGzipBatch(admin: Admin, topic: string, partition: number, baseOffset: bigint): Promise<void> {
  const dir = await partitionLogDir(admin, topic, partition);
  const [segment] = readdirSync(dir).filter((file) => file.endsWith('.log'));
  const fd = openSync(path.join(dir, segment!), 'r+');
  try {
    const size = fstatSync(fd).size;
    const header = Buffer.alloc(BATCH_HEADER_BYTES);
    for (let position = 0; position + BATCH_HEADER_BYTES <= size; ) {
      readSync(fd, header, 0, BATCH_HEADER_BYTES, position);
      const length = header.readInt32BE(8);
      if (header.readBigInt64BE(0) === baseOffset) {
        const payload = Buffer.alloc(2);
        readSync(fd, payload, 0, 2, position + BATCH_HEADER_BYTES);
        if (!payload.equals(Buffer.from(GZIP_MAGIC))) throw new Error(`the batch at offset ${baseOffset} in ${dir} is not gzip`);
        writeSync(fd, Buffer.from('XX'), 0, 2, position + BATCH_HEADER_BYTES);
        return;
      }
      position += 12 + length;
    }
    throw new Error(`no batch at offset ${baseOffset} in ${dir}`);
  } finally {
    closeSync(fd);
  }
}
