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

/**
 * A date-time from outside Tally that names no one instant: without a zone, or not on the
 * calendar (30 February, 24:00). Keeps the code `validation_failed`, the code the API's schema
 * gives the same field when it catches the mistake first, so a client sees one code for it.
 */
export class InvalidInstantError extends ValidationError {}

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

/** A hold's id is already taken by an open hold (a different command derived the same id). */
export class HoldAlreadyPlacedError extends BalanceStateError {
  override readonly code = 'hold_already_placed';
}

/** The hold was captured, released or expired (or never placed): it cannot be captured or released now. */
export class HoldNotOpenError extends BalanceStateError {
  override readonly code = 'hold_not_open';
}

/**
 * The balance has as many open holds as a balance may: another is refused until some are
 * captured or released (or expire). Retrying the same request succeeds only after that.
 */
export class TooManyOpenHoldsError extends BalanceStateError {
  override readonly code = 'too_many_open_holds';
}

/** The expiry worker came early (its clock, or a hold re-read): the hold stays until its expiresAt. */
export class HoldNotExpiredError extends BalanceStateError {
  override readonly code = 'hold_not_expired';
}

/**
 * A hold (or an entitlement) does not fit: it would take `available` below −overdraftLimit.
 * Carries the figures the caller needs to decide what to do; retrying the same request can only
 * succeed after a top-up or a release, so it is not retriable.
 */
export class InsufficientCreditsError extends BalanceStateError {
  override readonly code = 'insufficient_credits';

  constructor(
    message: string,
    readonly available: bigint,
    readonly overdraftLimit: bigint,
  ) {
    super(message);
  }
}
