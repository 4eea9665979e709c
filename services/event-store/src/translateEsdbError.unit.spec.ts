import { EventStoreUnavailableError, InvalidEventStoreRequestError } from './errors';
import { translateEsdbError } from './createEventStoreDbEventStore';

/** The client's errors as @eventstore/db-client shapes them: a `type` (its ErrorType) and the gRPC status in `code`. */
const clientError = (type: string, code?: number): Error => Object.assign(new Error(`${type} happened`), { type, code });

describe('translateEsdbError', () => {
  it.each([
    ['unavailable', 14],
    ['deadline-exceeded', 4],
    ['timeout', undefined],
    ['not-leader', 9],
    ['cancelled', 1],
    ['unknown', 14],
    ['unknown', 8],
    ['unknown', 10],
  ])('makes a %s error (gRPC %s) the retriable EventStoreUnavailableError', (type, code) => {
    const translated = translateEsdbError(clientError(type, code));
    expect(translated).toBeInstanceOf(EventStoreUnavailableError);
    expect(translated).toMatchObject({ retriable: true });
  });

  it('makes a discovery that never answered unavailable too', () => {
    expect(translateEsdbError(new Error('Failed to discover after 10 attempts.'))).toBeInstanceOf(EventStoreUnavailableError);
  });

  it('makes an append over the server\'s size limit a request error, naming the setting', () => {
    const translated = translateEsdbError(clientError('maximum-append-size-exceeded', 3));
    expect(translated).toBeInstanceOf(InvalidEventStoreRequestError);
    expect((translated as Error).message).toMatch(/EVENTSTORE_MAX_APPEND_SIZE/);
  });

  it('leaves what it does not know alone: a bug or a refusal is not retried', () => {
    for (const error of [clientError('access-denied', 7), clientError('unknown', 2), clientError('wrong-expected-version', 9), new TypeError('bad')]) {
      expect(translateEsdbError(error)).toBe(error);
    }
  });
});
