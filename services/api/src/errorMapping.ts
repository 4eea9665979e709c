import { StoredProductInvalidError } from '@tally/catalog';
import { formatCredits, InsufficientCreditsError, TallyError, ValidationError } from '@tally/domain';
import { DuplicateBalanceError } from '@tally/ledger';
import { RateLimitedError } from './apiErrors';

/** The body of every error the API answers. */
export interface ErrorBody {
  readonly error: string;
  readonly message: string;
  /** insufficient_credits only: the figures the refusal was decided on. */
  readonly available?: string;
  readonly overdraftLimit?: string;
  /** stored_product_invalid, to an operator's read of the product: its revision, why it fails and the document as stored. */
  readonly revision?: number;
  readonly reason?: string;
  readonly stored?: unknown;
}

export interface MappedError {
  readonly statusCode: number;
  readonly body: ErrorBody;
  /** Only failures the caller cannot have caused are logged as errors. */
  readonly unexpected: boolean;
  /** Headers the status calls for (`WWW-Authenticate` on 401, `Retry-After` on 429 and 503, `Location` of the balance a second opening found). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * TallyError codes whose status is not implied by their class. Codes missing here fall back
 * on the class: a ValidationError is 400, a retriable error 503; anything else (a caller bug
 * inside Tally such as a duplicate event id) is a 500 and is logged.
 */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  product_not_found: 404,
  balance_not_found: 404,
  product_already_exists: 409,
  // A change made against a revision of the product (If-Match) another change has replaced.
  product_changed: 412,
  // A stored product that fails today's validation: the request is fine, the product is not.
  stored_product_invalid: 409,
  balance_already_exists: 409,
  // A settings change made against a version of the balance (If-Match) another change has replaced.
  balance_changed: 412,
  idempotency_key_reused: 409,
  // Holds (issue 15): a hold or entitlement that does not fit is 402 with what is available; a
  // capture or release of a hold already captured, released or expired is 409, and so is a hold
  // on a balance with as many open holds as it may have.
  insufficient_credits: 402,
  hold_not_found: 404,
  hold_not_open: 409,
  hold_already_placed: 409,
  too_many_open_holds: 409,
  hold_not_expired: 409,
  // Refunds: one per charge, of a charge of the balance's own ledger.
  ledger_entry_not_found: 404,
  entry_not_refundable: 409,
  already_refunded: 409,
  // A command that contradicts the balance's state: the request is well-formed but refused.
  invalid_balance_state: 409,
  // A write whose balance's history was still being folded when its budget ran out: nothing was
  // appended and the fold goes on, so the same request (same Idempotency-Key) soon succeeds.
  // Answered well before the request timeout, so the client is told to retry, never cut off.
  balance_loading: 503,
  // Plans, subscriptions and purchases (@tally/subscriptions).
  plan_not_found: 404,
  subscription_not_found: 404,
  bundle_not_found: 404,
  // A purchase whose bundle is no longer what the buyer was shown: nothing bought, confirm anew.
  purchase_terms_changed: 409,
  // Auto-recharge: none set; or a balance that never warns, so it would never buy.
  auto_recharge_not_set: 404,
  warning_limit_not_set: 409,
  plan_already_exists: 409,
  plan_retired: 409,
  subscription_already_exists: 409,
  subscription_canceled: 409,
  // A change made against a version of the subscription (If-Match) another change has replaced.
  subscription_changed: 412,
  // Webhook endpoints (@tally/webhooks).
  webhook_endpoint_not_found: 404,
  webhook_delivery_not_found: 404,
  webhook_url_refused: 422,
  // Dead letters (@tally/metering): sending them back, one run at a time.
  redrive_running: 409,
  redrive_not_found: 404,
  redrive_not_running: 409,
  // Reading one dead letter whole: none at that place of the topic.
  dead_letter_not_found: 404,
  // The API's own refusals (apiErrors.ts).
  unauthorized: 401,
  insufficient_scope: 403,
  csrf_token_invalid: 403,
  no_console_session: 404,
  request_timeout: 408,
  unsupported_content_encoding: 415,
  rate_limited: 429,
};

/**
 * Fastify's own request errors, by its error code: all of them the client's doing. Each has a
 * message of ours, written for people: Fastify's own name codes and internals.
 */
const FASTIFY_ERRORS: Readonly<Record<string, { statusCode: number; error: string; message: string }>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { statusCode: 413, error: 'payload_too_large', message: 'the request body is larger than the API accepts' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    statusCode: 415,
    error: 'unsupported_media_type',
    message: 'the request body must be JSON, sent with Content-Type: application/json',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    statusCode: 400,
    error: 'invalid_content_length',
    message: 'the request body is not as long as its Content-Length header says',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { statusCode: 400, error: 'invalid_json', message: 'the request says it has a JSON body but the body is empty' },
  FST_ERR_CTP_INVALID_JSON_BODY: { statusCode: 400, error: 'invalid_json', message: 'the request body is not valid JSON' },
  FST_ERR_CTP_INVALID_TYPE: { statusCode: 400, error: 'bad_request', message: 'the Content-Type header is not valid' },
  FST_ERR_BAD_URL: { statusCode: 400, error: 'bad_url', message: 'the URL has a part that is not valid percent-encoded UTF-8' },
  FST_ERR_ASYNC_CONSTRAINT: { statusCode: 400, error: 'bad_request', message: 'the request cannot be routed' },
};

/**
 * Errors the HTTP server raises before Fastify sees a request (Node's `clientError`), by code:
 * a malformed request line or header, headers too large, a request that took too long.
 */
const CLIENT_ERRORS: Readonly<Record<string, { statusCode: number; error: string; message: string }>> = {
  ERR_HTTP_REQUEST_TIMEOUT: { statusCode: 408, error: 'request_timeout', message: 'the request did not arrive in time' },
  HPE_HEADER_OVERFLOW: { statusCode: 431, error: 'headers_too_large', message: 'the request headers are larger than the API accepts' },
};
const MALFORMED_REQUEST = { statusCode: 400, error: 'bad_request', message: 'the request is not well-formed HTTP' };

/** What to answer on a connection whose request Node could not parse; see `clientErrorResponse`. */
export function mapClientError(error: { readonly code?: unknown }): { statusCode: number; body: ErrorBody } {
  const known = (typeof error.code === 'string' ? CLIENT_ERRORS[error.code] : undefined) ?? MALFORMED_REQUEST;
  return { statusCode: known.statusCode, body: { error: known.error, message: known.message } };
}

export const INTERNAL_ERROR: ErrorBody = { error: 'internal_error', message: 'an unexpected error occurred; it has been logged' };

interface FastifyLikeError {
  readonly code?: unknown;
  readonly statusCode?: unknown;
  readonly validation?: unknown;
  readonly message?: unknown;
}

function messageOf(error: FastifyLikeError, fallback: string): string {
  return typeof error.message === 'string' && error.message.length > 0 ? error.message : fallback;
}

function headersFor(statusCode: number, error: TallyError): Pick<MappedError, 'headers'> {
  if (statusCode === 401) return { headers: { 'www-authenticate': 'Bearer' } };
  if (error instanceof RateLimitedError) return { headers: { 'retry-after': String(error.retryAfterSeconds) } };
  // A second opening: where the balance that exists is, for a client whose first answer was lost.
  if (error instanceof DuplicateBalanceError && error.existingBalanceId !== '') {
    return { headers: { location: `/v1/credit-balances/${encodeURIComponent(error.existingBalanceId)}` } };
  }
  // A retriable failure: a second later is as good a guess as any, and keeps clients from spinning.
  if (statusCode === 503) return { headers: { 'retry-after': '1' } };
  return {};
}

export function statusOfTallyError(error: TallyError): number | undefined {
  const byCode = STATUS_BY_CODE[error.code];
  if (byCode !== undefined) return byCode;
  if (error instanceof ValidationError) return 400;
  if (error.retriable) return 503;
  return undefined;
}

/** The one place that turns any thrown value into a status and an `{ error, message }` body. */
export function mapError(thrown: unknown): MappedError {
  if (thrown instanceof TallyError) {
    const statusCode = statusOfTallyError(thrown);
    if (statusCode !== undefined) {
      const figures =
        thrown instanceof InsufficientCreditsError
          ? { available: formatCredits(thrown.available), overdraftLimit: formatCredits(thrown.overdraftLimit) }
          : thrown instanceof StoredProductInvalidError && thrown.stored !== undefined
            ? { revision: thrown.stored.product.revision, reason: thrown.stored.reason, stored: thrown.stored.product.product }
            : {};
      return { statusCode, body: { error: thrown.code, message: thrown.message, ...figures }, unexpected: false, ...headersFor(statusCode, thrown) };
    }
    return { statusCode: 500, body: INTERNAL_ERROR, unexpected: true };
  }
  const error = (typeof thrown === 'object' && thrown !== null ? thrown : {}) as FastifyLikeError;
  if (error.validation !== undefined) {
    return { statusCode: 400, body: { error: 'validation_failed', message: messageOf(error, 'the request is invalid') }, unexpected: false };
  }
  const known = typeof error.code === 'string' ? FASTIFY_ERRORS[error.code] : undefined;
  if (known !== undefined) {
    return { statusCode: known.statusCode, body: { error: known.error, message: known.message }, unexpected: false };
  }
  // Any other 4xx Fastify raises before the handler (e.g. a malformed URL) is still the client's.
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return { statusCode: error.statusCode, body: { error: 'bad_request', message: messageOf(error, 'bad request') }, unexpected: false };
  }
  return { statusCode: 500, body: INTERNAL_ERROR, unexpected: true };
}
