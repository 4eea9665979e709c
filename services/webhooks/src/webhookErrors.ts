/**
 * Errors of webhook endpoints and their deliveries. Each says whether waiting could help
 * (`transient`); services/api's errorMapping turns the ones a request can cause into statuses.
 */
export abstract class WebhookError extends Error {
  abstract readonly transient: boolean;
}

/** The endpoint's URL is not one Tally will send to (scheme, form, or an address it refuses). */
export class WebhookUrlRefusedError extends WebhookError {
  override readonly name = 'WebhookUrlRefusedError';
  readonly transient = false;
}

/** No webhook endpoint (or delivery of it) with that id. */
export class WebhookEndpointNotFoundError extends WebhookError {
  override readonly name = 'WebhookEndpointNotFoundError';
  readonly transient = false;
}

export class WebhookDeliveryNotFoundError extends WebhookError {
  override readonly name = 'WebhookDeliveryNotFoundError';
  readonly transient = false;
}

/** A request that names an unknown event type, or no event type at all. */
export class WebhookEventTypeError extends WebhookError {
  override readonly name = 'WebhookEventTypeError';
  readonly transient = false;
}
