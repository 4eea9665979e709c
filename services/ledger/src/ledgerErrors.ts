import { TallyError } from '@tally/domain';

/** The same Idempotency-Key was sent again with a different request. */
export class IdempotencyKeyReusedError extends TallyError {
  readonly code = 'idempotency_key_reused';
  readonly retriable = false;
}

/**
 * This very request (key and body) was refused before, for its bundle or its terms, and told
 * nothing was bought: so nothing is, ever, under its key and body (LedgerService.refusePurchase).
 * Another body with the key, or a new key, may buy.
 */
export class PurchaseKeyRefusedError extends IdempotencyKeyReusedError {}

/** Other writers kept winning the race for the stream; the request may be sent again. */
export class ConcurrencyExhaustedError extends TallyError {
  readonly code = 'concurrency_conflict';
  readonly retriable = true;
}

/**
 * A write's time budget ran out while the balance's state was still loading: a long history
 * being folded (a balance of a million events that this process has not read and that has no
 * recent snapshot). Nothing was appended, so the request can be sent again as it is (the same
 * Idempotency-Key applies once). The fold goes on in the background and keeps its result (cache
 * and snapshot), so the retry finds the state loaded. Also what a fold abandoned at shutdown
 * leaves its waiters: another process answers the retry.
 */
export class BalanceLoadingError extends TallyError {
  readonly code = 'balance_loading';
  readonly retriable = true;
}

/**
 * A command's deterministic event id is already stored in another balance's stream: two
 * different commands derived the same id. Never "already done": that would drop a write. A bug
 * (or an id encoded ambiguously before the upgrade), so retrying cannot help.
 */
export class CommandIdCollisionError extends TallyError {
  readonly code = 'command_id_collision';
  readonly retriable = false;
}

/** No balance has this id in the registry. */
export class BalanceNotFoundError extends TallyError {
  readonly code = 'balance_not_found';
  readonly retriable = false;
}

/** A second balance for the same customer and product. */
export class DuplicateBalanceError extends TallyError {
  readonly code = 'balance_already_exists';
  readonly retriable = false;
  constructor(
    message: string,
    readonly existingBalanceId: string,
  ) {
    super(message);
  }

  /**
   * The refusal of a second opening, naming the balance that exists: a client whose first answer
   * was lost (a retried open) learns what it made without listing the customer's balances.
   */
  static of(customerId: string, productId: string, existingBalanceId: string): DuplicateBalanceError {
    return new DuplicateBalanceError(`customer "${customerId}" already has a balance of product "${productId}": balance "${existingBalanceId}"`, existingBalanceId);
  }
}

/**
 * A change made against a version of the balance (If-Match: its revision) that another change
 * has replaced: nothing was appended. Read the balance again and decide anew.
 */
export class BalanceChangedError extends TallyError {
  readonly code = 'balance_changed';
  readonly retriable = false;
}

/** The balance's product sells no bundle with this id. */
export class BundleNotFoundError extends TallyError {
  readonly code = 'bundle_not_found';
  readonly retriable = false;
}

/**
 * The bundle's credits or price are no longer what the buyer was shown (the purchase's expected
 * terms): nothing was bought. Not transient: the buyer confirms the new terms, or does not.
 */
export class PurchaseTermsChangedError extends TallyError {
  readonly code = 'purchase_terms_changed';
  readonly retriable = false;
}

/** No hold with this id was ever placed (or the id is not one Tally makes). */
export class HoldNotFoundError extends TallyError {
  readonly code = 'hold_not_found';
  readonly retriable = false;
}

/** The balance's ledger has no entry with this id. */
export class LedgerEntryNotFoundError extends TallyError {
  readonly code = 'ledger_entry_not_found';
  readonly retriable = false;
}

/** A refund of an entry that charged nothing: only a CreditConsumed can be refunded. */
export class EntryNotRefundableError extends TallyError {
  readonly code = 'entry_not_refundable';
  readonly retriable = false;
}

/** A second refund of the same charge, asked differently from the first: one refund per charge. */
export class AlreadyRefundedError extends TallyError {
  readonly code = 'already_refunded';
  readonly retriable = false;
}

/** The balance has no auto-recharge set. */
export class AutoRechargeNotSetError extends TallyError {
  readonly code = 'auto_recharge_not_set';
  readonly retriable = false;
}

/**
 * Auto-recharge buys when the balance's low-balance warning fires; a balance without a warning
 * limit never warns, so an auto-recharge on it would never act.
 */
export class WarningLimitNotSetError extends TallyError {
  readonly code = 'warning_limit_not_set';
  readonly retriable = false;
}
