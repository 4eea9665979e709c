import { TallyError, ValidationError } from '@tally/domain';

/**
 * The endpoint's URL is not one Tally sends to: not http(s), credentials in it, or a host that
 * resolves to a loopback, private, link-local or metadata address (without the setting).
 * Retrying the same URL cannot help; services/api's errorMapping answers it 422.
 */
export class WebhookUrlRefusedError extends TallyError {
  readonly code = 'webhook_url_refused';
  readonly retriable = false;
}

/**
 * The endpoint's host could not be resolved just now (a DNS server that timed out or failed):
 * nothing is refused, the same request may succeed in a moment; services/api answers it 503.
 */
export class WebhookUrlUnresolvedError extends TallyError {
  readonly code = 'webhook_url_unresolved';
  readonly retriable = true;
}

export class WebhookEndpointNotFoundError extends TallyError {
  readonly code = 'webhook_endpoint_not_found';
  readonly retriable = false;
}

export class WebhookDeliveryNotFoundError extends TallyError {
  readonly code = 'webhook_delivery_not_found';
  readonly retriable = false;
}

/** A request naming an unknown webhook event type, or none. */
export class WebhookEventTypeError extends ValidationError {
  override readonly code = 'unknown_webhook_event_type';
}

/**
 * A ledger event the recorder cannot decode or fold into its balance (an unknown type, an amount
 * this release refuses: as a newer release may write): not retriable, yet waited out rather than
 * failed on, as the balance projector waits out its UnfoldableLedgerEventError: in a rolling
 * upgrade a release that folds it takes over. Never skipped: its webhooks, and every later one,
 * are recorded once it folds. Only the event's own decoding and folding are wrapped in it.
 * (Not that error itself: it lives in @tally/projections, the Redis read model, which this
 * package does not depend on and does not export it.)
 */
export class UnfoldableWebhookEventError extends TallyError {
  readonly code = 'unfoldable_webhook_event';
  readonly retriable = false;

  constructor(
    event: { readonly id: string; readonly type: string; readonly streamId: string; readonly revision: bigint; readonly position: bigint },
    what: 'decoded' | 'folded',
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`ledger event ${event.id} (${event.type}, ${event.streamId}@${event.revision}, position ${event.position}) cannot be ${what} for its webhooks: ${reason}`, { cause });
  }
}
