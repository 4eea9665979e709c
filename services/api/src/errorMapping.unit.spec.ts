import { CatalogUnavailableError, ProductAlreadyExistsError, ProductNotFoundError, storedProductInvalid } from '@tally/catalog';
import {
  BalanceAlreadyOpenError,
  BalanceNotOpenError,
  BalanceStateError,
  HoldAlreadyPlacedError,
  HoldNotOpenError,
  InsufficientCreditsError,
  InvalidAmountError,
  InvalidUsageEventError,
  TallyError,
  TooManyOpenHoldsError,
  ValidationError,
} from '@tally/domain';
import { DuplicateEventIdError, EventStoreUnavailableError, InvalidEventStoreRequestError } from '@tally/event-store';
import { BalanceChangedError, BalanceLoadingError, BalanceNotFoundError, ConcurrencyExhaustedError, DuplicateBalanceError, HoldNotFoundError, IdempotencyKeyReusedError } from '@tally/ledger';
import { ProcessorStatusUnavailableError } from '@tally/runtime';
import {
  AuthenticationRequiredError,
  InsufficientScopeError,
  RateLimitedError,
  RequestBodyTimeoutError,
  UnsupportedContentEncodingError,
} from './apiErrors';
import { INTERNAL_ERROR, mapClientError, mapError } from './errorMapping';
import { ReadModelUnavailableError } from './balances/guardBalanceReader';
import { WriteQueueFullError } from './balances/keyedSerializer';
import { NotConsistentError } from './balances/waitForConsistency';

describe('mapError', () => {
  it('answers insufficient_credits with what was available and the overdraft limit, as decimal strings', () => {
    expect(mapError(new InsufficientCreditsError('does not fit', -1_500_000n, 2_000_000n)).body).toEqual({
      error: 'insufficient_credits',
      message: 'does not fit',
      available: '-1.5',
      overdraftLimit: '2',
    });
  });

  it('answers stored_product_invalid with the product as stored only when the error carries it (an operator reading the catalog)', () => {
    const stored = { id: 'legacy', name: 'Legacy', bundles: [{ id: 'starter', credits: 100 }] };
    const reason = new ValidationError('bundles[0].credits must be a string');
    const read = mapError(storedProductInvalid('legacy', reason, { revision: 4, product: stored as never }));
    expect(read).toMatchObject({ statusCode: 409, body: { error: 'stored_product_invalid', message: expect.stringContaining(reason.message), revision: 4, reason: reason.message, stored } });
    // Where the asker may not read the catalog (a purchase, opening a balance), the catalog store throws it without.
    expect(mapError(storedProductInvalid('legacy', reason)).body).toEqual({ error: 'stored_product_invalid', message: expect.stringContaining(reason.message) });
  });

  it.each([
    [new ValidationError('bad'), 400, 'validation_failed'],
    [new InvalidAmountError('bad amount'), 400, 'invalid_amount'],
    [new InvalidUsageEventError('bad event'), 400, 'invalid_usage_event'],
    [new ProductNotFoundError('no product'), 404, 'product_not_found'],
    [new BalanceNotFoundError('no balance'), 404, 'balance_not_found'],
    [new BalanceNotOpenError('not open'), 404, 'balance_not_found'],
    [new ProductAlreadyExistsError('taken'), 409, 'product_already_exists'],
    [new DuplicateBalanceError('taken', 'b1'), 409, 'balance_already_exists'],
    [new BalanceChangedError('changed since read'), 412, 'balance_changed'],
    [new BalanceAlreadyOpenError('open'), 409, 'balance_already_exists'],
    [new BalanceStateError('refused'), 409, 'invalid_balance_state'],
    [new IdempotencyKeyReusedError('reused'), 409, 'idempotency_key_reused'],
    [new ConcurrencyExhaustedError('busy'), 503, 'concurrency_conflict'],
    [new BalanceLoadingError('still folding'), 503, 'balance_loading'],
    [new CatalogUnavailableError('down'), 503, 'catalog_unavailable'],
    [new EventStoreUnavailableError(new Error('ECONNREFUSED')), 503, 'event_store_unavailable'],
    [new NotConsistentError('behind'), 503, 'not_consistent'],
    [new WriteQueueFullError('full'), 503, 'too_many_pending_writes'],
    [new ReadModelUnavailableError('redis down'), 503, 'read_model_unavailable'],
    [new ProcessorStatusUnavailableError('postgres down'), 503, 'processors_unavailable'],
    [new AuthenticationRequiredError('no key'), 401, 'unauthorized'],
    [new InsufficientScopeError('read only'), 403, 'insufficient_scope'],
    [new RequestBodyTimeoutError('slow'), 408, 'request_timeout'],
    [new UnsupportedContentEncodingError('gzip'), 415, 'unsupported_content_encoding'],
    [new RateLimitedError('too many', 7), 429, 'rate_limited'],
    [new InsufficientCreditsError('does not fit', 1n, 0n), 402, 'insufficient_credits'],
    [new HoldNotFoundError('no hold'), 404, 'hold_not_found'],
    [new HoldNotOpenError('captured'), 409, 'hold_not_open'],
    [new HoldAlreadyPlacedError('taken'), 409, 'hold_already_placed'],
    [new TooManyOpenHoldsError('capture or release some'), 409, 'too_many_open_holds'],
  ])('maps %p to %i', (error, statusCode, code) => {
    expect(mapError(error)).toMatchObject({ statusCode, body: { error: code, message: error.message }, unexpected: false });
  });

  it('adds the headers a status calls for', () => {
    expect(mapError(new AuthenticationRequiredError('no key')).headers).toEqual({ 'www-authenticate': 'Bearer' });
    expect(mapError(new RateLimitedError('too many', 7)).headers).toEqual({ 'retry-after': '7' });
    expect(mapError(new CatalogUnavailableError('down')).headers).toEqual({ 'retry-after': '1' });
    expect(mapError(new DuplicateBalanceError('taken', 'b 1')).headers).toEqual({ location: '/v1/credit-balances/b%201' });
    // A write whose balance was still loading: told to come back (the fold goes on meanwhile), not cut off.
    expect(mapError(new BalanceLoadingError('still folding'))).toEqual({
      statusCode: 503,
      body: { error: 'balance_loading', message: 'still folding' },
      unexpected: false,
      headers: { 'retry-after': '1' },
    });
    expect(mapError(new ValidationError('bad')).headers).toBeUndefined();
  });

  it.each([
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'request_timeout'],
    ['HPE_HEADER_OVERFLOW', 431, 'headers_too_large'],
    ['HPE_INVALID_METHOD', 400, 'bad_request'],
    [undefined, 400, 'bad_request'],
  ])("maps Node's client error %s to %i", (code, statusCode, error) => {
    expect(mapClientError({ code })).toEqual({ statusCode, body: { error, message: expect.any(String) } });
  });

  it('answers a TallyError that no client can cause with a generic 500 and marks it for the log', () => {
    for (const error of [new DuplicateEventIdError(['e1'], 'stored in another stream'), new InvalidEventStoreRequestError('not a UUID')]) {
      expect(mapError(error)).toEqual({ statusCode: 500, body: INTERNAL_ERROR, unexpected: true });
    }
  });

  it('falls back on the class for codes it does not list', () => {
    class NewValidation extends ValidationError {
      override readonly code = 'new_validation';
    }
    class NewTransient extends TallyError {
      readonly code = 'new_transient';
      readonly retriable = true;
    }
    expect(mapError(new NewValidation('x')).statusCode).toBe(400);
    expect(mapError(new NewTransient('x')).statusCode).toBe(503);
  });

  it('maps Fastify validation failures to 400 with their message', () => {
    const error = Object.assign(new Error('body.credits must be a decimal string'), {
      code: 'FST_ERR_VALIDATION',
      statusCode: 400,
      validation: [],
    });
    expect(mapError(error)).toEqual({
      statusCode: 400,
      body: { error: 'validation_failed', message: 'body.credits must be a decimal string' },
      unexpected: false,
    });
  });

  it.each([
    ['FST_ERR_CTP_BODY_TOO_LARGE', 413, 'payload_too_large'],
    ['FST_ERR_CTP_INVALID_MEDIA_TYPE', 415, 'unsupported_media_type'],
    ['FST_ERR_CTP_INVALID_JSON_BODY', 400, 'invalid_json'],
    ['FST_ERR_CTP_EMPTY_JSON_BODY', 400, 'invalid_json'],
    ['FST_ERR_CTP_INVALID_CONTENT_LENGTH', 400, 'invalid_content_length'],
    ['FST_ERR_BAD_URL', 400, 'bad_url'],
  ])('maps Fastify %s to %i in words of its own', (code, statusCode, error) => {
    const mapped = mapError(Object.assign(new Error('FST says'), { code, statusCode: 400 }));
    expect(mapped).toEqual({ statusCode, body: { error, message: expect.stringMatching(/^the /) }, unexpected: false });
  });

  it('keeps any other client error Fastify raises a 4xx', () => {
    const mapped = mapError(Object.assign(new Error('Unsupported thing'), { code: 'FST_ERR_SOMETHING_NEW', statusCode: 400 }));
    expect(mapped).toEqual({ statusCode: 400, body: { error: 'bad_request', message: 'Unsupported thing' }, unexpected: false });
  });

  it('answers anything else with a generic 500 that leaks nothing', () => {
    for (const thrown of [new Error('connection string postgres://secret@db'), new TypeError('x is undefined'), 'a string', null, undefined, 42]) {
      expect(mapError(thrown)).toEqual({ statusCode: 500, body: INTERNAL_ERROR, unexpected: true });
    }
    expect(mapError(Object.assign(new Error('server side'), { statusCode: 502 })).statusCode).toBe(500);
  });
});
