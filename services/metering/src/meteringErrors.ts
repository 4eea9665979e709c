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

/**
 * A usage event whose customer has a balance registered but not yet opened (its opening event is
 * not appended), still so `balanceOpenWaitMs` after the balance's registration. It is not metered as
 * "nothing to charge" (that would be final): it goes to the dead letters unmarked, and replaying
 * it once the balance is open meters it.
 */
export class BalanceNotOpenedError extends TallyError {
  readonly code = 'balance_not_opened';
  readonly retriable = false;
}

/**
 * Metering this message failed in a way that retrying cannot fix (PostgreSQL refused what it
 * would store, a bug): the consumer isolated it from the rest of its chunk and dead-letters it
 * with the failure's own code in the reason, instead of stalling the partition on it.
 */
export class UnmeterableUsageError extends TallyError {
  readonly code = 'unmeterable_usage';
  readonly retriable = false;

  constructor(
    readonly causeCode: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The dead-letter topic refused a letter for good (its max.message.bytes below the letter, an
 * ACL): not the message's fault, so never a reason to dead-letter or skip it. The consumer holds
 * the message's partition there and sends the letter again after a backoff, so it is retriable:
 * it goes once the topic takes it (an operator raises the limit), with nothing lost.
 */
export class DeadLetterRefusedError extends TallyError {
  readonly code = 'dead_letter_refused';
  readonly retriable = true;

  constructor(
    readonly partition: number,
    /** The offset of the message whose letter was refused: where its partition waits. */
    readonly offset: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A credit product of the customer's balances is stored in the catalog but fails validation (an
 * older version or a hand edit wrote it): the usage cannot be priced until it is fixed, so it
 * goes to the dead letters, to be replayed after the fix. The catalog's own error, so the API's
 * answer for the product and the usage's dead letter name one failure.
 */
export { StoredProductInvalidError } from '@tally/catalog';

/**
 * Redis or PostgreSQL did not answer for the dead-letter log or a send-back of dead letters (down,
 * restarting, out of retries): an outage, answered 503, not a bug; the same request can succeed later.
 */
export class DeadLettersUnavailableError extends TallyError {
  readonly code = 'dead_letters_unavailable';
  readonly retriable = true;
}
