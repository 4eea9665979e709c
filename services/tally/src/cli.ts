import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { EventStore } from '@tally/event-store';
import {
  AsideGenerationLeftError,
  createBalanceReadModel,
  createRedisClient,
  replayBalances,
  StoreBehindProjectionError,
  verifyBalances,
  type RebuildProgress,
} from '@tally/projections';
import { topicValueSubject, usageEventAvroSchema } from '@tally/schemas';
import { SingleBar } from 'cli-progress';
import { Command, CommanderError } from 'commander';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import { COMPRESSION_NAMES, compressionType, createKafka, recordBytesOf, sendInParts, topicSendBudget, type CompressionName } from '@tally/kafka';
import {
  createDeadLetterLog,
  createDeadLetterReader,
  createDeadLetterRedrives,
  createUsageEventDecoder,
  DeadLetterNotFoundError,
  isDeadLetterOffset,
  isDeadLetterPartition,
  isDeadLetterPlace,
  MAX_PICKED_DEAD_LETTERS,
  skipUndecodableBatch,
  type RedriveRun,
} from '@tally/metering';
import { createLedgerService, createPostgresBalancePages, createPostgresBalanceRegistry, createPostgresBalanceStateStore, keepBalanceStates } from '@tally/ledger';
import { createPostgresCatalogStore } from '@tally/catalog';
import { migrate } from '@tally/postgres';
import { processorStatusView, readProcessorStatus } from '@tally/runtime';
import { isRefusedByRegistry, ledgerRelayCheckpointName, registerSchema, rewindLedgerRelay } from '@tally/ledger-relay';
import { logLevel } from 'kafkajs';
import { createLedgerHistory, keyIdOf } from '@tally/api';
import { InvalidInstantError, InvalidUsageEventError, isoInstantOf, parseUsageEvent, usageTimestampOf } from '@tally/domain';
import { ConfigError, loadConfig } from './config';
import pino from 'pino';
import { createLogger } from './logger';
import { localApiKeyEntry, readLocalApiKey } from './localApiKey';
import { openEventStore, openPool, redactedConnectionString } from './openEventStore';
import { serviceConnections } from './serviceConnections';
import { eventsInParts } from './sendParts';
import { onStopSignal } from './stopSignals';
import { parsePropertyArgument, PlainPropertyValue, toAvroUsageEvent } from './usageEventAvro';

/**
 * `tally`: the engineers' command line. Like main.ts it is an entry point, so it reads the
 * configuration itself; every command is a thin wrapper over a package's exported API.
 *
 * Exit codes (README, "The `tally` command"): 0 done; 1 failed (a service, the run itself);
 * 2 not run as given (commander's own refusals, a flag's value, flags that exclude each other, a replay
 * whose event store is behind the live balances, the configuration); 3 a documented negative answer (not metered, differences found, no such letter).
 */
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const EXIT_NEGATIVE = 3;

/** A command line that cannot be run as given, found before anything is connected: exits 2. */
class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * A time a flag gives, read as the API and the consumer read theirs (isoInstantOf): a zone and a
 * day on the calendar, else refused with the reason (2), never read in this host's zone or rolled over.
 */
function instantFlag(flag: string, text: string): number {
  try {
    return isoInstantOf(text, flag);
  } catch (error) {
    if (error instanceof InvalidInstantError) throw new UsageError(error.message);
    throw error;
  }
}

/**
 * `tally send --timestamp`: epoch milliseconds or ISO text, read by the consumer's own rule
 * (usageTimestampOf), and refused (2) wherever the consumer would dead-letter the event. The event
 * carries it as a number, which the consumer reads more strictly than text (a number below 10^11
 * is taken for seconds), so the number is read again: 1972 given in ISO cannot go out.
 */
function timestampFlag(text: string): number {
  let millis: number;
  try {
    millis = usageTimestampOf(/^\d+$/.test(text) ? Number(text) : text, '--timestamp');
  } catch (error) {
    if (error instanceof InvalidUsageEventError) throw new UsageError(error.message);
    throw error;
  }
  try {
    return usageTimestampOf(millis);
  } catch (error) {
    if (error instanceof InvalidUsageEventError) {
      throw new UsageError(`--timestamp ${JSON.stringify(text)} goes out as epoch milliseconds, ${millis}, which the consumer would dead-letter: ${error.message}`);
    }
    throw error;
  }
}

/**
 * The socket errors of a registry that cannot be reached. mappersmith (the registry client's HTTP
 * layer) reports them as answers with status 400, so the words tell them from the registry's own.
 */
const UNREACHABLE = /\b(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|socket hang up)\b/;

/**
 * Why `tally send` could not register its schema: refused (the registry's no, which waiting will
 * not change: incompatible under the subject's rule, invalid, credentials), or the registry cannot
 * be reached, or another failure of its. Never a silent loss: each stops the send.
 */
function registrationFailure(error: unknown, subject: string): string {
  const message = error instanceof Error ? error.message : String(error);
  if (isRefusedByRegistry(error)) return `the schema registry refused the schema for ${subject}; nothing was sent: ${message}`;
  const unreachable = UNREACHABLE.exec(message);
  if (unreachable !== null) {
    // The client's prefix ("Confluent_Schema_Registry - Error, status 400: ") says nothing true here.
    return `the schema registry at ${config.registryUrl} cannot be reached (${message.replace(/^.*?status \d+: /, '')}); nothing was sent`;
  }
  return `the schema registry at ${config.registryUrl} did not register the schema for ${subject}; nothing was sent: ${message}`;
}

/** The file a `--schema` flag names: one that cannot be read is the flag's value at fault (2), not a failed run. */
function readSchemaFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new UsageError(`--schema: cannot read the file ${file} (${reason})`);
  }
}

const { config, connections } = (() => {
  try {
    const loaded = loadConfig();
    /** TLS and authentication to the services, as the main job uses them (CA files read here). */
    return { config: loaded, connections: serviceConnections(loaded) };
  } catch (error) {
    // As main.ts: the message names the variable, a stack trace would only bury it.
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`tally: ${error.message}\n`);
    process.exit(EXIT_USAGE);
  }
})();
// The CLI is quieter than the main job unless told otherwise (blank counts as unset, as in loadConfig).
// Its log goes to stderr: stdout carries the answers scripts pipe on (events sent, balances, a
// letter), which a warning among them would break. Synchronous, so nothing is lost at exit.
// At that default its warnings are routine for a terminal (a missing topic, a Ctrl-C): their
// errors without stacks, kept when a level is asked for (debugging).
const logLevelGiven = process.env.TALLY_LOG_LEVEL?.trim() ? true : false;
const logger = createLogger({ level: logLevelGiven ? config.logLevel : 'warn', stacks: logLevelGiven }, pino.destination({ dest: 2, sync: true }));
const repoRoot = path.resolve(__dirname, '..', '..', '..');

function progressBar(label: string) {
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% | {value}/{total} events | {rate} ev/s | ETA {eta_formatted}`,
    hideCursor: true,
  });
  let started = false;
  return {
    update(progress: RebuildProgress) {
      if (!started) {
        bar.start(Math.max(progress.total, 1), 0, { rate: '0' });
        started = true;
      }
      bar.setTotal(Math.max(progress.total, 1));
      bar.update(progress.done, { rate: Math.round(progress.ratePerSecond).toString() });
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

/**
 * Why the CLI's Redis cannot be reached now (its last connection error, cleared once it is
 * ready): a command that fails then says so, where ioredis would say only "Connection is closed.".
 */
let redisUnreachable: Error | undefined;

/** A command fails after a few reconnections rather than waiting for a Redis that is away. */
function cliRedis(options: { lazyConnect?: boolean } = {}): Redis {
  const redis = createRedisClient({
    url: config.redis.url,
    commandTimeoutMs: config.timeouts.redisCommandMs,
    maxRetriesPerRequest: 3,
    ...connections.redis,
    ...options,
  });
  // Without a listener ioredis prints every failed reconnection with a stack trace.
  redis.on('error', (error: Error) => {
    redisUnreachable = error;
    logger.debug({ err: error }, 'redis connection problem');
  });
  redis.on('ready', () => {
    redisUnreachable = undefined;
  });
  return redis;
}

/** A command's failure with Redis away: Redis named, where (without credentials) and why; ioredis's own words dropped. */
function failureMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (redisUnreachable === undefined) return message;
  const unreachable = `Redis at ${redactedConnectionString(config.redis.url)} cannot be reached (${redisUnreachable.message})`;
  const ioredisWords = error instanceof Error && (error.name === 'MaxRetriesPerRequestError' || message === 'Connection is closed.');
  return ioredisWords ? unreachable : `${unreachable}; ${message}`;
}

/** The event store and its pool for one command, closed afterwards whatever happens. */
async function withEventStore<T>(work: (stores: { pool: Pool; eventStore: EventStore }) => Promise<T>) {
  const pool = openPool(config, { applicationName: 'tally-cli', max: 4 });
  try {
    const eventStore = await openEventStore(config, pool, logger);
    try {
      return await work({ pool, eventStore });
    } finally {
      await eventStore.close();
    }
  } finally {
    await pool.end();
  }
}

/** withEventStore, and Redis. */
async function withStores<T>(work: (stores: { pool: Pool; eventStore: EventStore; redis: Redis }) => Promise<T>) {
  return withEventStore(async ({ pool, eventStore }) => {
    const redis = cliRedis({ lazyConnect: true });
    try {
      await redis.connect();
      return await work({ pool, eventStore, redis });
    } finally {
      redis.disconnect();
    }
  });
}

/** Rows as aligned columns, the first row the header: what a shell reader scans and `column` would make. */
function printTable(rows: readonly (readonly string[])[]): void {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) process.stdout.write(`${row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()}\n`);
}

/** Writes to stdout, waiting while a slow reader's pipe is full rather than buffering all of it. */
async function writeOut(text: string): Promise<void> {
  if (!process.stdout.write(text)) await once(process.stdout, 'drain');
}

/** A whole number of decimal digits within bounds, or a UsageError naming the flag. */
function integerFlag(flag: string, text: string, min: number, max: number): number {
  const value = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) throw new UsageError(`${flag} takes an integer from ${min} to ${max}`);
  return value;
}

// Commander's refusals (unknown option, missing argument) reach the handler at the end as
// CommanderErrors, after commander has printed them, so they exit 2 rather than commander's 1.
const program = new Command('tally').description('Tally: usage metering into prepaid credits').exitOverride();

program
  .command('send')
  .description('publish a usage event (Avro through the schema registry, or JSON with --json)')
  .requiredOption('-c, --customer <customerId>', 'customer id (also the message key)')
  .requiredOption('-e, --event <name>', 'event name consumption rules match, e.g. api_call')
  .option('-p, --property <key=value>', 'a property; repeat for more', (value: string, all: string[]) => [...all, value], [])
  .option('--id <id>', 'idempotency key of the usage event (default: a new UUID)')
  .option('--timestamp <when>', 'epoch milliseconds or ISO-8601 with a zone (default: now)')
  .option('-n, --count <n>', 'send n events with fresh ids', '1')
  .option('--json', 'send plain JSON instead of Avro')
  .option('--schema <file>', "register and write with this Avro schema (a newer version of Tally's usage-event schema) instead of the one Tally ships")
  .option('--compression <codec>', `codec of the batch: ${COMPRESSION_NAMES.join(', ')}`, config.kafka.compression)
  .action(async (options: {
    customer: string;
    event: string;
    property: string[];
    id?: string;
    timestamp?: string;
    count: string;
    json?: boolean;
    schema?: string;
    compression: string;
  }) => {
    const properties: Record<string, PlainPropertyValue> = Object.fromEntries(
      options.property.map((argument) => {
        try {
          return parsePropertyArgument(argument);
        } catch (error) {
          throw new UsageError((error as Error).message);
        }
      }),
    );
    const timestamp = options.timestamp === undefined ? Date.now() : timestampFlag(options.timestamp);
    const count = integerFlag('--count', options.count, 1, 1_000_000);
    const compression = options.compression as CompressionName;
    if (!COMPRESSION_NAMES.includes(compression)) throw new UsageError(`--compression takes one of ${COMPRESSION_NAMES.join(', ')}`);
    const schema = options.schema === undefined ? JSON.stringify(usageEventAvroSchema) : readSchemaFile(options.schema);
    const eventAt = (index: number) => ({
      id: count === 1 && options.id !== undefined ? options.id : `${options.id ?? randomUUID()}${count === 1 ? '' : `-${index}`}`,
      customerId: options.customer,
      event: options.event,
      timestamp,
      properties,
    });
    // Refused here (2) rather than dead-lettered as invalid_usage_event after a 0: the consumer's
    // and the HTTP ingest's own parser. The events differ only in their ids' index suffixes, so the
    // first and the last (the longest id) stand for all of them.
    for (const index of new Set([0, count - 1])) {
      try {
        parseUsageEvent(eventAt(index));
      } catch (error) {
        if (error instanceof InvalidUsageEventError) throw new UsageError(`not sent, the consumer would dead-letter the event: ${error.message}`);
        throw error;
      }
    }
    const kafka = createKafka({ clientId: 'tally-cli', brokers: [...config.kafka.brokers], logLevel: logLevel.NOTHING, ...connections.kafka });
    const producer = kafka.producer({ idempotent: true });
    // Ctrl-C (or SIGTERM, a dropped session) stops after the part in hand, and the events sent are
    // counted: their ids are fresh, so a run killed outright leaves no telling what to send again
    // without charging twice. A second signal quits at once.
    let stoppedBy: NodeJS.Signals | undefined;
    const uninstall = onStopSignal((signal) => {
      stoppedBy ??= signal;
    });
    try {
      await producer.connect();
      const { registryAuth } = connections;
      const registry = new SchemaRegistry({ host: config.registryUrl, ...(registryAuth !== undefined ? { auth: { ...registryAuth } } : {}) });
      const subject = topicValueSubject(config.topics.usage);
      let schemaId: number | undefined;
      if (!options.json) {
        try {
          // Under the subject's rule as the operator set it, never rewriting it (registerSchema).
          schemaId = await registerSchema(registry, subject, schema);
        } catch (error) {
          throw new Error(registrationFailure(error, subject), { cause: error });
        }
      }
      const encode = async (event: ReturnType<typeof eventAt>) =>
        schemaId === undefined ? Buffer.from(JSON.stringify(event)) : await registry.encode(schemaId, toAvroUsageEvent(event));
      // One key, so one partition: a large --count in one send is one record batch, which the
      // broker refuses whole over the topic's max.message.bytes. Parts the topic takes go in
      // order, each acknowledged before the next (sendInParts), and the events are made a part
      // at a time (eventsInParts): a --count of a million is not held in memory at once.
      const budget = topicSendBudget({ kafka, topic: config.topics.usage, logger });
      let sent = 0;
      try {
        // Parts of one send each: as large as the topic takes (its budget), measured as sendInParts measures them.
        const partBytes = await budget.current();
        const sizeOf = (value: Buffer) => recordBytesOf({ key: options.customer, value });
        for await (const part of eventsInParts({ count, partBytes, sizeOf, eventAt, encode })) {
          // Stopped while connecting: nothing goes.
          if (stoppedBy !== undefined) break;
          const messages = part.map(({ value }) => ({ key: options.customer, value }));
          let sentOfPart = 0;
          await sendInParts({
            messages,
            budget,
            send: async (sending) => {
              await producer.send({ topic: config.topics.usage, acks: -1, compression: compressionType(compression), messages: sending });
              // Printed once acknowledged (parts go in order): stdout lists exactly what is on the topic.
              const acknowledged = part.slice(sentOfPart, sentOfPart + sending.length);
              sentOfPart += sending.length;
              sent += sending.length;
              await writeOut(acknowledged.map(({ event }) => `${JSON.stringify(event)}\n`).join(''));
            },
            refusedAlone: (index, error) => {
              throw new Error(`an event of ${messages[index]!.value.length} bytes is larger than ${config.topics.usage} takes (its max.message.bytes)`, { cause: error });
            },
            logger,
          });
          if (stoppedBy !== undefined) break;
        }
      } catch (error) {
        // Fresh ids unless --id was given: sending all again would count the sent ones twice.
        if (sent === 0) throw error;
        throw new Error(`sent ${sent} of the ${count} events (those printed), then failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
      if (stoppedBy !== undefined && sent < count) {
        throw new Error(`stopped by ${stoppedBy}: sent ${sent} of the ${count} events (those printed); the rest were not made or not sent`);
      }
    } finally {
      uninstall();
      await producer.disconnect();
    }
  });

program
  .command('skip-batch')
  .description('move the consumer group past a record batch it cannot decode, after dead-lettering the raw batch (stop the consumers first)')
  .requiredOption('--partition <n>', 'partition of the usage topic, as reported by the consumer (log, /health)')
  .requiredOption('--offset <offset>', 'offset where the partition waits, as reported')
  .option('--group <groupId>', 'consumer group', config.consumer.groupId)
  .option('--topic <topic>', 'usage topic', config.topics.usage)
  .action(async (options: { partition: string; offset: string; group: string; topic: string }) => {
    // The one check of a place on a topic (as `tally dead-letter` reads it): digits Kafka can hold.
    if (!isDeadLetterPartition(options.partition) || !isDeadLetterOffset(options.offset)) throw new UsageError('--partition and --offset take non-negative integers');
    const skipped = await skipUndecodableBatch({
      kafka: { brokers: config.kafka.brokers, clientId: 'tally-cli', ...connections.kafka },
      groupId: options.group,
      topic: options.topic,
      dlqTopic: config.topics.deadLetter,
      partition: Number(options.partition),
      offset: options.offset,
      compression: compressionType(config.kafka.compression),
    });
    process.stdout.write(
      `skipped ${skipped.topic}/${skipped.partition} offsets ${skipped.firstOffset}..${skipped.lastOffset} (${skipped.records} records, ${skipped.codec}: ${skipped.reason});\n` +
        `raw batch sent to ${config.topics.deadLetter}; group ${options.group} resumes at ${skipped.committed}\n`,
    );
  });

program
  .command('redrive')
  .description('send dead letters back to the usage topic once what made them fail is fixed; their ids keep usage from being charged twice')
  .option('--error-code <code>', 'only letters with this error code (tally.dlq.error-code); repeat for more', (value: string, all: string[]) => [...all, value], [])
  .option('--all', 'letters of every error code')
  .option('--letter <partition:offset>', `only this letter, by its place on the dead-letter topic, whatever its error code; repeat for more (up to ${MAX_PICKED_DEAD_LETTERS})`, (value: string, all: string[]) => [...all, value], [])
  .option('--since <when>', 'only letters dead-lettered at or after this time (ISO-8601 with a zone)')
  .option('--dry-run', 'read and count what would be sent back, send nothing')
  .action(async (options: { errorCode: string[]; all?: boolean; letter: string[]; since?: string; dryRun?: boolean }) => {
    const chosen = [options.all === true, options.errorCode.length > 0, options.letter.length > 0].filter(Boolean).length;
    if (chosen > 1) throw new UsageError('--all, --error-code and --letter exclude each other');
    // A letter refused for what it is (invalid_usage_event) only comes back: the codes are chosen.
    if (chosen === 0 && !options.dryRun) throw new UsageError('name the letters to send back: --error-code <code> (repeatable), --letter <partition:offset> (repeatable) or --all; --dry-run counts them by code');
    const badPlace = options.letter.find((place) => !isDeadLetterPlace(place));
    if (badPlace !== undefined) throw new UsageError(`--letter takes <partition>:<offset>, as GET /v1/dead-letters shows them; not ${badPlace}`);
    if (new Set(options.letter).size > MAX_PICKED_DEAD_LETTERS) {
      throw new UsageError(`--letter picks at most ${MAX_PICKED_DEAD_LETTERS} letters a run, as the API does; send the rest in another run, or by --error-code`);
    }
    const since = options.since === undefined ? undefined : new Date(instantFlag('--since', options.since));
    // The console's own send-back path: the same lease (one run at a time across the deployment),
    // the run recorded in Redis where the console lists it and can stop it, and the letters it
    // sends marked there as sent back.
    const pool = openPool(config, { applicationName: 'tally-cli', max: 1 });
    const redis = cliRedis({ lazyConnect: true });
    const redrives = createDeadLetterRedrives({
      kafka: { brokers: config.kafka.brokers, clientId: 'tally-cli', ...connections.kafka },
      dlqTopic: config.topics.deadLetter,
      usageTopic: config.topics.usage,
      compression: compressionType(config.kafka.compression),
      redis,
      deadLetters: createDeadLetterLog({ redis, keyPrefix: config.redis.keyPrefix }),
      keyPrefix: config.redis.keyPrefix,
      pool,
      logger,
    });
    // Ctrl-C ends the run after the batch at hand and records how far it came.
    const uninstall = onStopSignal(() => void redrives.stop());
    let run: RedriveRun;
    try {
      run = await redrives.runToEnd({
        errorCodes: options.all || options.errorCode.length === 0 ? 'all' : options.errorCode,
        ...(options.letter.length > 0 ? { letters: options.letter } : {}),
        ...(since !== undefined ? { since } : {}),
        ...(options.dryRun ? { dryRun: true } : {}),
        requestedBy: null,
        via: 'cli',
      });
    } finally {
      uninstall();
      await pool.end();
      redis.disconnect();
    }
    const { result } = run;
    const codes = Object.entries(result.republishedByErrorCode).map(([code, count]) => `${code}: ${count}`);
    const { skipped } = result;
    process.stdout.write(
      `read ${result.read} dead letter(s) of ${config.topics.deadLetter}; ${options.dryRun ? 'would send back' : 'sent back'} ${result.republished} to ${config.topics.usage}` +
        `${codes.length > 0 ? ` (${codes.join(', ')})` : ''}\n` +
        `left: ${skipped.not_selected} not selected, ${skipped.raw_batch} raw batch(es) (skip-batch), ${skipped.cut} cut to fit (the whole original is in the source topic), ${skipped.other_source} from another topic, ` +
        `${skipped.too_large} too large for ${config.topics.usage}\n`,
    );
    if (skipped.too_large > 0) {
      // Left in the dead-letter topic and not marked sent back: picked by place, they go back alone.
      const more = skipped.too_large - result.tooLarge.length;
      process.stderr.write(
        `tally: ${skipped.too_large} dead letter(s) larger than ${config.topics.usage} takes (its max.message.bytes) left in ${config.topics.deadLetter}, not sent back: ` +
          `${result.tooLarge.join(', ')}${more > 0 ? ` and ${more} more (a run with the same choice names them again)` : ''}; raise max.message.bytes, then send them back with --letter <partition>:<offset>\n`,
      );
      process.exitCode = EXIT_NEGATIVE;
    }
    if (run.status === 'succeeded' && result.notFound.length > 0) {
      // Named as `tally dead-letter` names a place with no letter: exit 3, not a quiet success.
      process.stderr.write(
        `tally: no dead letter at ${result.notFound.join(', ')} of ${config.topics.deadLetter} (past the end of the partition, or a partition the topic has not): nothing was sent for them\n`,
      );
      process.exitCode = EXIT_NEGATIVE;
    }
    if (run.status !== 'succeeded') {
      const why = run.status === 'cancelled' ? `stopped by ${run.cancelRequestedBy?.keyName ?? 'an unnamed key'} from the console or the API` : `${run.status}: ${run.error ?? 'no reason recorded'}`;
      process.stderr.write(`send-back ${run.id} ${why}; what it sent stays sent, and running it again sends the rest\n`);
      process.exitCode = EXIT_FAILURE;
    }
  });

program
  .command('dead-letter')
  .description('print one dead letter whole, read from the dead-letter topic: why, every header, the value and the record in it; exits 3 where there is none')
  .requiredOption('--partition <n>', 'partition of the dead-letter topic (the console and GET /v1/dead-letters show it)')
  .requiredOption('--offset <offset>', 'offset on the dead-letter topic')
  .action(async (options: { partition: string; offset: string }) => {
    if (!isDeadLetterPartition(options.partition) || !isDeadLetterOffset(options.offset)) throw new UsageError('--partition and --offset take non-negative integers');
    // The API's reader (GET /v1/dead-letters/{partition}/{offset}), for a shell without the API:
    // its answer, the same JSON.
    const letter = await createDeadLetterReader({
      kafka: { brokers: config.kafka.brokers, clientId: 'tally-cli', ...connections.kafka },
      dlqTopic: config.topics.deadLetter,
      decoder: createUsageEventDecoder({ registryUrl: config.registryUrl, ...(connections.registryAuth !== undefined ? { auth: connections.registryAuth } : {}) }),
    }).read(Number(options.partition), options.offset);
    process.stdout.write(`${JSON.stringify(letter, null, 2)}\n`);
  });

program
  .command('relay-rewind')
  .description('move the ledger relay\'s checkpoint back, so it publishes that stretch of the ledger to the ledger topic again when it next starts; every relay must be stopped')
  .option('--to-time <when>', 'publish again from the first event recorded at or after this time (ISO-8601 with a zone)')
  .option('--to-position <n>', 'publish again from the first event after this global position')
  .option('--topic <name>', 'the ledger topic whose relay to rewind', config.topics.ledger)
  .option('--dry-run', 'say what would be published again, change nothing')
  .action(async (options: { toTime?: string; toPosition?: string; topic: string; dryRun?: boolean }) => {
    if ((options.toTime === undefined) === (options.toPosition === undefined)) throw new UsageError('relay-rewind takes one of --to-time and --to-position');
    const time = options.toTime === undefined ? undefined : new Date(instantFlag('--to-time', options.toTime));
    if (options.toPosition !== undefined && !/^(0|[1-9][0-9]{0,18})$/.test(options.toPosition)) throw new UsageError('--to-position takes a non-negative integer');
    await withEventStore(async ({ pool, eventStore }) => {
      const checkpointName = ledgerRelayCheckpointName(options.topic);
      const rewound = await rewindLedgerRelay({
        pool,
        eventStore,
        checkpointName,
        to: time !== undefined ? { time } : { position: BigInt(options.toPosition!) },
        dryRun: options.dryRun === true,
      });
      const first = rewound.firstEvent === null ? 'no event follows it: nothing is published again' : `the relay publishes again from position ${rewound.firstEvent.position} (recorded ${rewound.firstEvent.recordedAt.toISOString()}) up to the head, ${rewound.head}, when it next starts`;
      process.stdout.write(`${checkpointName}: ${rewound.dryRun ? 'would move' : 'moved'} the checkpoint from ${rewound.previous} back to ${rewound.position}; ${first}\n`);
    });
  });

program
  .command('balance <customerId>')
  .description("print a customer's credit balances from the Redis snapshots")
  .action(async (customerId: string) => {
    const redis = cliRedis();
    try {
      const readModel = createBalanceReadModel({ redis, keyPrefix: config.redis.keyPrefix });
      const balances = await readModel.getCustomerBalances(customerId);
      // While no generation is served (a replay rebuilding it) the read model answers nothing for
      // everyone: that is not "no balances". The API folds from the event store then; here, say so.
      if (balances.length === 0 && (await readModel.servedCheckpoint()) === undefined) {
        throw new Error('the balance read model is not served (being rebuilt, or never built: tally replay); its balances cannot be read now');
      }
      // balance (settled), held and available side by side; the open holds as data, not a JSON string.
      const items = balances.map((snapshot) => ({ ...snapshot, holds: JSON.parse(snapshot.holds) as unknown }));
      process.stdout.write(`${JSON.stringify({ customerId, items }, null, 2)}\n`);
    } finally {
      redis.disconnect();
    }
  });

program
  .command('replay')
  .description('rebuild every balance snapshot from the event store, then switch readers over atomically')
  .option('--verify', 'rebuild aside and report every balance that differs from the live snapshot, without switching; exits 3 when any differs')
  .option('--batch-size <n>', 'events per read and per Redis write', '1000')
  .option(
    '--replace-ahead-projection',
    "replace the live balances even though they were projected further than this event store's head (from another store, or from this one before a restore); without it such a replay exits 2",
  )
  .action(async (options: { verify?: boolean; batchSize: string; replaceAheadProjection?: boolean }) => {
    // Refused here, before connecting, rather than by the replay after it.
    const batchSize = integerFlag('--batch-size', options.batchSize, 1, 100_000);
    if (options.verify && options.replaceAheadProjection) throw new UsageError('--replace-ahead-projection is for a replay; --verify never switches');
    const bar = progressBar(options.verify ? 'verify' : 'replay');
    // Ctrl-C (or a dropped session) stops the rebuild after the page at hand and deletes the
    // generation it was building (a whole copy of the snapshots otherwise left in Redis); the
    // live one serves on.
    const stop = new AbortController();
    const interrupted = new Error('interrupted');
    const uninstall = onStopSignal(() => stop.abort(interrupted));
    const common = { logger, keyPrefix: config.redis.keyPrefix, batchSize, onProgress: bar.update, signal: stop.signal };
    try {
      await withStores(async ({ eventStore, redis }) => {
        if (options.verify) {
          const result = await verifyBalances({ ...common, eventStore, redis });
          bar.stop();
          process.stdout.write(
            `verified ${result.balances} balances up to position ${result.checkpoint}: ${result.differences.length} difference(s)\n`,
          );
          for (const difference of result.differences) process.stdout.write(`${JSON.stringify(difference)}\n`);
          process.exitCode = result.differences.length === 0 ? 0 : EXIT_NEGATIVE;
        } else {
          const result = await replayBalances({ ...common, eventStore, redis, replaceAheadProjection: options.replaceAheadProjection === true });
          bar.stop();
          process.stdout.write(
            `replayed ${result.events} events in ${result.seconds.toFixed(1)} s into generation ${result.generation}` +
              `${result.previous ? ` (replaced ${result.previous})` : ''}\n`,
          );
        }
      });
    } catch (error) {
      // Said from what the cleanup did: the rebuild throws the stop's reason itself only once the
      // generation it was building is deleted, else says what is left (AsideGenerationLeftError).
      if (error === interrupted) throw new Error('interrupted; the generation being built was deleted, the live one serves on');
      if (error instanceof AsideGenerationLeftError && error.cause === interrupted) throw new Error(`${error.message}; the live one serves on`);
      if (error instanceof StoreBehindProjectionError) {
        throw new StoreBehindProjectionError(`${error.message}: check TALLY_DATABASE_URL and TALLY_DATABASE_SCHEMA, or replace it with --replace-ahead-projection`);
      }
      throw error;
    } finally {
      bar.stop();
      uninstall();
    }
  });

program
  .command('keep-balance-states')
  .description('keep a stored state for every balance that has none or an older one (after a bulk import or restore), so that no writer folds its whole history')
  .option('--page-size <n>', 'balances loaded and kept together', '1000')
  .option('--after <balanceId>', 'resume after this balance id (the last one a previous run printed)')
  .action(async (options: { pageSize: string; after?: string }) => {
    const pageSize = integerFlag('--page-size', options.pageSize, 1, 100_000);
    const pool = openPool(config, { applicationName: 'tally-cli', max: 4 });
    try {
      // The schema as the services have it (idempotent; takes turns with a starting service).
      await migrate({ pool, schema: config.database.schema, logger });
      const eventStore = await openEventStore(config, pool, logger);
      try {
        const result = await keepBalanceStates({
          eventStore,
          stateStore: createPostgresBalanceStateStore({ pool }),
          pageBalanceIds: createPostgresBalancePages({ pool }),
          logger,
          pageSize,
          ...(options.after !== undefined ? { after: options.after } : {}),
          // One line per page: the last id is where --after resumes if the run is interrupted.
          onPage: ({ balances, kept, last }) => process.stdout.write(`${balances} balances checked, ${kept} states kept; done through ${last}\n`),
        });
        process.stdout.write(`kept ${result.kept} stored states over ${result.balances} balances\n`);
      } finally {
        await eventStore.close();
      }
    } finally {
      await pool.end();
    }
  });

program
  .command('api-keys')
  .description('list the API keys the API accepts, by id, name and scopes (never the keys)')
  .action(() => {
    // What the main job would configure: TALLY_API_KEYS, else the local key it made.
    const local = config.api.keys === undefined ? readLocalApiKey(config.home) : undefined;
    const keys = config.api.keys ?? (local === undefined ? [] : [localApiKeyEntry(local)]);
    if (keys.length === 0) {
      process.stdout.write('no API keys: TALLY_API_KEYS is unset and the main job has not made its local key yet (npm start makes one)\n');
      return;
    }
    // The id is what logs, product versions and ledger entries name a key by.
    printTable([['id', 'name', 'scopes'], ...keys.map(({ key, name, scopes }) => [keyIdOf(key), name ?? '-', scopes.join('+')])]);
  });

program
  .command('processors')
  .description('list the checkpointed processors (ledger relay, consumption projector, webhooks, hold expiry, …): each checkpoint, how far behind the event store it is, and the process that leads it')
  .option('--json', 'print GET /v1/processors\'s JSON answer, on one line')
  .action(async (options: { json?: boolean }) => {
    const status = await withEventStore(({ pool, eventStore }) => readProcessorStatus(pool, eventStore));
    if (options.json === true) {
      process.stdout.write(`${JSON.stringify(processorStatusView(status))}\n`);
      return;
    }
    const { processors } = status;
    if (processors.length === 0) {
      process.stdout.write('no processor has saved a checkpoint yet\n');
      return;
    }
    // Behind: positions between the checkpoint and the head, an upper bound of the events still to handle.
    printTable([
      ['processor', 'position', 'behind', 'saved', 'leader'],
      ...processors.map(({ name, position, behind, savedAt, leader }) => [
        name,
        position.toString(),
        behind.toString(),
        savedAt.toISOString(),
        leader === null ? 'none' : `pid ${leader.pid} (${leader.applicationName || 'no application name'})`,
      ]),
    ]);
  });

program
  .command('usage-event <customerId> <eventId>')
  .description("whether one of the customer's usage events is metered and the ledger entries it wrote on each balance, as GET /v1/customers/{customerId}/usage-events/{eventId} answers; exits 3 when it is not metered")
  .option('--json', "print the API's JSON answer")
  .action(async (customerId: string, eventId: string, options: { json?: boolean }) => {
    const found = await withStores(({ pool, eventStore, redis }) => {
      const balanceRegistry = createPostgresBalanceRegistry({ pool });
      const ledger = createLedgerService({ eventStore, catalog: createPostgresCatalogStore({ pool, logger }), balanceRegistry, logger });
      const deadLetters = createDeadLetterLog({ redis, keyPrefix: config.redis.keyPrefix });
      return createLedgerHistory({ ledger, balanceRegistry, deadLetters }).usage(customerId, [eventId]);
    }).then(([answer]) => answer!);
    const letters = found.deadLetters ?? [];
    if (options.json === true) process.stdout.write(`${JSON.stringify(found)}\n`);
    else if (!found.metered) {
      process.stdout.write(
        letters.length === 0
          ? `not metered: still on the usage topic, or dead-lettered from bytes that name no usage event (GET /v1/dead-letters?key=${customerId})\n`
          : 'not metered: dead-lettered\n',
      );
    } else if (found.balances.length === 0) process.stdout.write("metered, charging nothing: no rule of the customer's products matched it, or it cost nothing\n");
    else {
      process.stdout.write(`metered, on ${found.balances.length} balance${found.balances.length === 1 ? '' : 's'}\n`);
      printTable([
        ['balance', 'product', 'entry', 'type', 'credits', 'balance after', 'recorded'],
        ...found.balances.flatMap(({ balanceId, productId, entries }) =>
          entries.map((entry) => [balanceId, productId, entry.id, entry.type, entry.credits ?? '', entry.balanceAfter ?? '', entry.recordedAt]),
        ),
      ]);
    }
    if (options.json !== true && letters.length > 0) {
      process.stdout.write(`dead letters of it (${letters.length}, newest first)\n`);
      printTable([
        ['letter', 'dead-lettered', 'error code', 'sent back', 'reason'],
        ...letters.map((letter) => [`${letter.partition}:${letter.offset}`, letter.deadLetteredAt, letter.errorCode ?? '', letter.sentBackAt ?? '', letter.reason ?? '']),
      ]);
    }
    if (!found.metered) process.exitCode = EXIT_NEGATIVE;
  });

program
  .command('stack <action>')
  .description('the local stack: up, down or status')
  .action((action: string) => {
    if (!['up', 'down', 'status'].includes(action)) throw new UsageError('stack takes up, down or status');
    execFileSync('bash', [path.join(repoRoot, 'scripts', 'stack.sh'), action], { stdio: 'inherit' });
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  // Commander has printed its own words (or the help, exit 0) already.
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE);
  process.stderr.write(`tally: ${failureMessage(error)}\n`);
  // A replay refused over balances projected further than its store: not run as given (2), as the store may be the wrong one.
  const usage = error instanceof UsageError || error instanceof StoreBehindProjectionError;
  process.exit(usage ? EXIT_USAGE : error instanceof DeadLetterNotFoundError ? EXIT_NEGATIVE : EXIT_FAILURE);
});
