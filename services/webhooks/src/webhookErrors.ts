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
