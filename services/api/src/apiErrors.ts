import { TallyError, ValidationError } from '@tally/domain';

/** No key, or not a valid one: 401 with `WWW-Authenticate: Bearer`. */
export class AuthenticationRequiredError extends TallyError {
  readonly code = 'unauthorized';
  readonly retriable = false;
}

/** A valid key without the scope the route needs: 403. */
export class InsufficientScopeError extends TallyError {
  readonly code = 'insufficient_scope';
  readonly retriable = false;
}

/** A write with the console's session cookie but without its CSRF token: 403. */
export class CsrfTokenInvalidError extends TallyError {
  readonly code = 'csrf_token_invalid';
  readonly retriable = false;
}

/** GET /v1/console-sessions/current without a session cookie: 404. */
export class NoConsoleSessionError extends TallyError {
  readonly code = 'no_console_session';
  readonly retriable = false;
}

/** Over a rate limit: 429, with `Retry-After` in whole seconds. */
export class RateLimitedError extends TallyError {
  readonly code = 'rate_limited';
  readonly retriable = true;

  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** A body compressed (or otherwise encoded) in a way the API does not decode: 415. */
export class UnsupportedContentEncodingError extends ValidationError {
  override readonly code = 'unsupported_content_encoding';
}

/** The body did not arrive in time: 408, and the connection is closed. */
export class RequestBodyTimeoutError extends TallyError {
  readonly code = 'request_timeout';
  readonly retriable = false;
}

/** A purchase (or auto-recharge) of more bundles at once than a portal token may buy: 400. */
export class PortalQuantityLimitError extends ValidationError {
  override readonly code = 'portal_quantity_limit';
}
