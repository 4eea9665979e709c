import { isUtf8 } from 'node:buffer';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import type { UsageEvent } from '@tally/domain';
import { types, type Schema, type Type } from 'avsc';
import type { IHeaders } from 'kafkajs';
import { assertAvroBlocksBounded } from './avroBlockGuard';
import { binaryCloudEventAttributes, isBinaryCloudEvent, parseNativeUsageEvent, usageEventFromBinaryCloudEvent, usageEventFromJson } from './cloudEventUsage';
import type { DeadLetterUsage } from './deadLetterMessage';
import { SchemaRegistryUnavailableError, UndecodableUsageEventError, UnknownSchemaIdError } from './meteringErrors';
import { usageIdentityOf } from './usageIdentity';

export interface UsageEventDecoder {
  /**
   * Decodes a Kafka message into a validated UsageEvent: Confluent-framed Avro, Tally's JSON, a
   * structured-mode CloudEvent, or a binary-mode one (`ce_` headers, the data as the value). Throws UndecodableUsageEventError,
   * UnknownSchemaIdError or the domain's InvalidUsageEventError (never retriable: dead letters),
   * or SchemaRegistryUnavailableError (retriable: the same bytes decode once the registry is back).
   */
  decode(value: Buffer | null, headers?: IHeaders): Promise<UsageEvent>;
  /**
   * The record a value holds, as its producer wrote it, before any validation: Avro decoded with
   * its writer's schema, or JSON parsed. For showing a dead letter; throws as `decode` does.
   */
  readRecord(value: Buffer): Promise<UsageRecord>;
  /**
   * The customer and usage event id a message names, as far as they can be read, for a message
   * that failed to decode or validate; null when they cannot be (never throws).
   */
  identify(value: Buffer | null, headers?: IHeaders): Promise<DeadLetterUsage | null>;
}

/** A value's record, unvalidated: what an operator reads to see what a producer sent. */
export interface UsageRecord {
  readonly format: 'avro' | 'json';
  /** The registry's id of the writer's schema (Avro only). */
  readonly schemaId: number | null;
  readonly record: unknown;
}

export interface UsageEventDecoderOptions {
  /** Confluent-compatible API root, e.g. http://127.0.0.1:8081/apis/ccompat/v7 (Apicurio). */
  readonly registryUrl: string;
  /** HTTP basic authentication, when the registry wants it. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** Bound on one registry request, so an unresponsive registry fails (and is retried) instead of hanging. */
  readonly requestTimeoutMs?: number;
}

type RegistryMiddleware = NonNullable<ConstructorParameters<typeof SchemaRegistry>[0]['middlewares']>[number];

const MAGIC_BYTE = 0;
const OPEN_BRACE = 0x7b;
/** Magic byte + 4-byte big-endian schema id. */
const HEADER_LENGTH = 5;

const NOT_FOUND = 404;
/** Confluent's error code for "no such schema", in the body of its 404. */
const SCHEMA_NOT_FOUND = 40403;

function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

/** The registry client returns avsc Types for Avro schemas, other objects for JSON Schema or Protobuf. */
function isAvroType(schema: unknown): schema is Type {
  return typeof (schema as { typeName?: unknown }).typeName === 'string';
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A long as a number where that is exact, else as a bigint. */
function exactLong(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/**
 * Avro's long as a number where that is exact, a bigint beyond 2^53. avsc's own long throws
 * "potential precision loss" there, which made the whole event undecodable over a property no
 * rule reads; the domain reads a bigint property as its decimal string and refuses a timestamp
 * that large. avsc's documented way to a custom long (LongType.__with): it hands over the 8
 * bytes little-endian, two's complement.
 */
const EXACT_LONG = types.LongType.__with({
  fromBuffer(buffer: Buffer): number | bigint {
    // Two halves: exact whenever the result is safe, and no bigint made for the usual long.
    const value = buffer.readInt32LE(4) * 2 ** 32 + buffer.readUInt32LE(0);
    return Number.isSafeInteger(value) ? value : buffer.readBigInt64LE(0);
  },
  toBuffer(value: number | bigint): Buffer {
    const buffer = Buffer.alloc(8);
    buffer.writeBigInt64LE(BigInt(value));
    return buffer;
  },
  fromJSON: (value: number | string): number | bigint => (typeof value === 'number' ? value : exactLong(BigInt(value))),
  toJSON: (value: number | bigint): number | string => (typeof value === 'bigint' ? value.toString() : value),
  isValid: (value: unknown): boolean => Number.isSafeInteger(value) || (typeof value === 'bigint' && BigInt.asIntN(64, value) === value),
  compare: (a: number | bigint, b: number | bigint): number => (a < b ? -1 : a > b ? 1 : 0),
});

/**
 * Every long of a writer schema is EXACT_LONG. A hook rather than avsc's `registry` option: the
 * client passes the same options for every schema, and avsc adds each named type to that
 * registry, so the second version of a record (same name) would fail as a duplicate.
 */
function exactLongs(schema: Schema): Type | undefined {
  return schema === 'long' || (typeof schema === 'object' && !Array.isArray(schema) && (schema as { type?: unknown }).type === 'long') ? EXACT_LONG : undefined;
}

/**
 * Usage events arrive as Confluent-framed Avro (magic byte 0, schema id, Avro binary) or as JSON.
 * Writer schemas come from the registry once per id: the library caches them by id for the life
 * of the process (a registered schema id never changes meaning), so decoding costs no round trip
 * after the first message of each schema.
 */
export function createUsageEventDecoder(options: UsageEventDecoderOptions): UsageEventDecoder {
  const requestTimeoutMs = options.requestTimeoutMs ?? 5000;
  const timeout: RegistryMiddleware = () => ({
    async prepareRequest(next) {
      return (await next()).enhance({ timeout: requestTimeoutMs });
    },
  });
  // No retries inside the client: the consumer retries with backoff and keeps heartbeating.
  const registry = new SchemaRegistry(
    {
      host: options.registryUrl,
      retry: { retries: 0 },
      middlewares: [timeout],
      ...(options.auth !== undefined ? { auth: { ...options.auth } } : {}),
    },
    { [SchemaType.AVRO]: { typeHook: exactLongs } },
  );

  // The schemas resolved so far, by id, read without an await: the library's own cache answers
  // through a chain of promises per message, a measurable share of what the consumer allocated.
  // Never evicted, as the library's is not: a registry holds few schemas, each read once.
  const resolved = new Map<number, Awaited<ReturnType<SchemaRegistry['getSchema']>>>();

  /**
   * Whether the registry's 404 for a schema id is Confluent's "no such schema" (error_code 40403).
   * Any other 404 is a path it does not serve: a registry URL without its API root (Apicurio's
   * /apis/ccompat/v7) answers so for every id, and read as "unknown id" every Avro event would be
   * dead-lettered. The client's error keeps only the status, so the id is asked for again and the
   * body read; only ids the registry answers 404 for pay the second request.
   */
  async function isUnknownSchemaId(schemaId: number): Promise<boolean> {
    const headers: Record<string, string> =
      options.auth === undefined ? {} : { authorization: `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')}` };
    try {
      const response = await fetch(`${options.registryUrl.replace(/\/+$/, '')}/schemas/ids/${schemaId}`, { headers, signal: AbortSignal.timeout(requestTimeoutMs) });
      const body = (await response.json()) as { error_code?: unknown } | null;
      return response.status === NOT_FOUND && body?.error_code === SCHEMA_NOT_FOUND;
    } catch {
      return false;
    }
  }

  async function writerSchemaOf(schemaId: number) {
    try {
      const schema = await registry.getSchema(schemaId);
      resolved.set(schemaId, schema);
      return schema;
    } catch (error) {
      const status = statusOf(error);
      if (status === NOT_FOUND) {
        if (await isUnknownSchemaId(schemaId)) throw new UnknownSchemaIdError(schemaId, { cause: error });
        // Retried, and logged at every retry with this message, until the URL is fixed.
        throw new SchemaRegistryUnavailableError(
          `the schema registry answered 404 for schema id ${schemaId} without Confluent's error code ${SCHEMA_NOT_FOUND} (no such schema): ` +
            `is ${options.registryUrl} the root of its Confluent-compatible API (Apicurio: .../apis/ccompat/v7)?`,
          { cause: error },
        );
      }
      if (status !== undefined) {
        // mappersmith reports network failures and timeouts as responses too (status 400/408).
        throw new SchemaRegistryUnavailableError(`schema registry request for id ${schemaId} failed: ${reasonOf(error)}`, {
          cause: error,
        });
      }
      // The registry answered with a schema the client cannot use: every retry would get the same.
      throw new UndecodableUsageEventError(`schema ${schemaId} from the registry is not usable: ${reasonOf(error)}`, {
        cause: error,
      });
    }
  }

  /** The schema id of a Confluent-framed value (magic byte 0 checked by the caller). */
  function schemaIdOf(value: Buffer): number {
    if (value.length < HEADER_LENGTH) throw new UndecodableUsageEventError('Confluent-framed message shorter than its 5-byte header');
    return value.readInt32BE(1);
  }

  /** Synchronous once the schema is at hand: the consumer's path adds no promise per message. */
  function avroRecordOf(schemaId: number, schema: Awaited<ReturnType<typeof writerSchemaOf>>, value: Buffer): unknown {
    const body = value.subarray(HEADER_LENGTH);
    try {
      // avsc trusts the item counts of arrays and maps; a body that declares more than its
      // bytes can hold would keep it looping for hours and stall the partition.
      if (isAvroType(schema)) assertAvroBlocksBounded(schema, body);
      return schema.fromBuffer(body) as unknown;
    } catch (error) {
      throw new UndecodableUsageEventError(`Avro payload does not match schema ${schemaId}: ${reasonOf(error)}`, { cause: error });
    }
  }

  function jsonRecordOf(value: Buffer): unknown {
    // Read with replacement characters, ids that differ in a byte that is not UTF-8 would be one
    // id, metered once for all of them (Avro strings are refused likewise: avroBlockGuard).
    if (!isUtf8(value)) throw new UndecodableUsageEventError('invalid JSON: not valid UTF-8');
    try {
      return JSON.parse(value.toString('utf8')) as unknown;
    } catch (error) {
      throw new UndecodableUsageEventError(`invalid JSON: ${reasonOf(error)}`, { cause: error });
    }
  }

  function neitherFormat(value: Buffer): UndecodableUsageEventError {
    return new UndecodableUsageEventError(
      `neither Confluent-framed Avro (magic byte 0) nor JSON (starting with "{"): first byte 0x${value[0]!.toString(16).padStart(2, '0')}`,
    );
  }

  async function decodeRecord(value: Buffer): Promise<UsageEvent> {
    // The writer's schema decodes the record, whatever version it is: a field added by a newer
    // version is read and ignored, so producers may move on without a restart here.
    if (value[0] === MAGIC_BYTE) {
      const schemaId = schemaIdOf(value);
      const schema = resolved.get(schemaId) ?? (await writerSchemaOf(schemaId));
      return parseNativeUsageEvent(avroRecordOf(schemaId, schema, value));
    }
    if (value[0] === OPEN_BRACE) return usageEventFromJson(jsonRecordOf(value));
    throw neitherFormat(value);
  }

  async function readRecord(value: Buffer): Promise<UsageRecord> {
    if (value[0] === MAGIC_BYTE) {
      const schemaId = schemaIdOf(value);
      const schema = resolved.get(schemaId) ?? (await writerSchemaOf(schemaId));
      return { format: 'avro', schemaId, record: avroRecordOf(schemaId, schema, value) };
    }
    if (value[0] === OPEN_BRACE) return { format: 'json', schemaId: null, record: jsonRecordOf(value) };
    throw value.length === 0 ? new UndecodableUsageEventError('empty message value') : neitherFormat(value);
  }

  return {
    async decode(value, headers) {
      if (isBinaryCloudEvent(headers)) return usageEventFromBinaryCloudEvent(headers, value ?? Buffer.alloc(0));
      if (value === null || value.length === 0) throw new UndecodableUsageEventError('empty message value');
      return decodeRecord(value);
    },
    readRecord,
    async identify(value, headers) {
      const cloudEvent = binaryCloudEventAttributes(headers);
      if (cloudEvent !== undefined) return usageIdentityOf(cloudEvent);
      if (value === null || value.length === 0) return null;
      // Best effort for a message already judged: bytes that cannot be read name nothing, and a
      // registry that cannot answer now must not hold up the dead letter (it only loses the names).
      return readRecord(value).then(
        ({ record }) => usageIdentityOf(record),
        () => null,
      );
    },
  };
}
