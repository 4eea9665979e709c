import { TallyError } from '@tally/domain';

/** The same Idempotency-Key was sent again with a different request. */
export class IdempotencyKeyReusedError extends TallyError {
  readonly code = 'idempotency_key_reused';
  readonly retriable = false;
}

/** Other writers kept winning the race for the stream; the request may be sent again. */
export class ConcurrencyExhaustedError extends TallyError {
  readonly code = 'concurrency_conflict';
  readonly retriable = true;
}

export function isWrongExpectedRevision(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'wrong_expected_revision';
}
