/**
 * The usage event contract on Kafka: Avro, Confluent wire format (magic byte 0, 4-byte schema id,
 * Avro body), registered under the topic-name strategy's subject. The `.avsc` file is the source
 * of truth, shared with non-TypeScript producers; this module only locates and parses it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AvroRecordSchema {
  readonly type: 'record';
  readonly name: string;
  readonly namespace: string;
  readonly doc?: string;
  readonly fields: ReadonlyArray<{ readonly name: string; readonly type: unknown; readonly default?: unknown; readonly doc?: string }>;
}

/** Subject of a topic's value schema under Confluent's TopicNameStrategy. */
export function topicValueSubject(topic: string): string {
  return `${topic}-value`;
}

export const USAGE_EVENT_SUBJECT = topicValueSubject('usage-events');

// `src/` and `dist/` are both one level below the package root, so the path holds for either.
export const usageEventAvroSchemaPath = join(__dirname, '..', 'avro', 'usage-event.avsc');

export const usageEventAvroSchema: AvroRecordSchema = JSON.parse(readFileSync(usageEventAvroSchemaPath, 'utf8'));

/**
 * A property value as avsc reads and writes it: the union has two numeric branches (long and
 * double), so avsc cannot tell them apart from a bare number and keeps every branch wrapped.
 */
export type UsageEventAvroPropertyValue =
  | null
  | { readonly boolean: boolean }
  | { readonly long: number }
  | { readonly double: number }
  | { readonly string: string };

/** A usage event as avsc decodes it (timestamp in epoch milliseconds). */
export interface UsageEventAvroRecord {
  readonly id: string;
  readonly customerId: string;
  readonly event: string;
  readonly timestamp: number;
  readonly properties: Readonly<Record<string, UsageEventAvroPropertyValue>>;
}
