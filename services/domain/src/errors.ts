/**
 * Every failure Tally names is a TallyError: a stable machine-readable `code`, and
 * `retriable`, which tells callers whether trying the same thing again can succeed.
 * The metering consumer retries retriable errors and dead-letters the others; the
 * HTTP layer maps codes to statuses in one place (services/api/src/errorMapping.ts).
 */
export abstract class TallyError extends Error {
  abstract readonly code: string;
  abstract readonly retriable: boolean;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input that can never become valid by retrying: a bad amount, a malformed request or event. */
export class ValidationError extends TallyError {
  readonly code: string = 'validation_failed';
  readonly retriable = false;
}

export class InvalidAmountError extends ValidationError {
  override readonly code = 'invalid_amount';
}

export class InvalidUsageEventError extends ValidationError {
  override readonly code = 'invalid_usage_event';
}

/** A command that contradicts the balance's current state (e.g. topping up a balance that is not open). */
export class BalanceStateError extends TallyError {
  readonly code: string = 'invalid_balance_state';
  readonly retriable = false;
}

export class BalanceNotOpenError extends BalanceStateError {
  override readonly code = 'balance_not_found';
}

export class BalanceAlreadyOpenError extends BalanceStateError {
  override readonly code = 'balance_already_exists';
}
