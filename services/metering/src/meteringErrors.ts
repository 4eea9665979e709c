import { TallyError } from '@tally/domain';

/**
 * A message that is not a usage event in any format Tally reads: garbage bytes, an empty value,
 * broken JSON or Avro that does not match its writer schema. Retrying cannot help: it goes to
 * the dead letters.
 */
export class UndecodableUsageEventError extends TallyError {
  readonly code = 'undecodable_usage_event';
  readonly retriable = false;
}

/** Confluent-framed Avro whose schema id the registry does not know (deleted, or never registered there). */
export class UnknownSchemaIdError extends TallyError {
  readonly code = 'unknown_schema_id';
  readonly retriable = false;
  constructor(readonly schemaId: number, options?: { cause?: unknown }) {
    super(`the schema registry has no schema with id ${schemaId}`, options);
  }
}

/** The registry could not be asked (down, timing out, 5xx): the same message decodes once it is back. */
export class SchemaRegistryUnavailableError extends TallyError {
  readonly code = 'schema_registry_unavailable';
  readonly retriable = true;
}

/** A record batch that could not be decompressed, skipped by an operator (`tally skip-batch`): its raw bytes are dead-lettered. */
export class UndecodableBatchError extends TallyError {
  readonly code = 'undecodable_batch';
  readonly retriable = false;
}
