import { TallyError } from '@tally/domain';
import { DuplicateEventIdError, EventStoreUnavailableError, WrongExpectedRevisionError } from './errors';
import { parseExpectedRevision, serializeExpectedRevision } from './expectedRevision';
import { translateError } from './translateError';

function pgError(code: string, detail?: string): Error {
  return Object.assign(new Error('from pg'), { code, detail });
}

describe('translateError', () => {
  it('turns TY001 into WrongExpectedRevisionError naming every mismatched stream', () => {
    const error = translateError(
      pgError(
        'TY001',
        JSON.stringify([
          { streamId: 'a', expected: '4', actual: '7' },
          { streamId: 'b', expected: 'stream_exists', actual: 'no_stream' },
        ]),
      ),
    );
    expect(error).toBeInstanceOf(WrongExpectedRevisionError);
    expect(error).toBeInstanceOf(TallyError);
    const wrong = error as WrongExpectedRevisionError;
    expect(wrong).toMatchObject({ code: 'wrong_expected_revision', retriable: true, streamId: 'a', expected: 4n, actual: 7n });
    expect(wrong.streamIds).toEqual(['a', 'b']);
    expect(wrong.conflicts[1]).toEqual({ streamId: 'b', expected: 'stream_exists', actual: 'no_stream' });
    expect(wrong.message).toContain('b expected stream_exists, actual no_stream');
  });

  it('turns TY002 into a non-retriable DuplicateEventIdError', () => {
    const error = translateError(pgError('TY002', JSON.stringify([{ streamId: 'b', eventIds: ['id-1', 'id-2'] }])));
    expect(error).toBeInstanceOf(DuplicateEventIdError);
    expect(error).toMatchObject({ code: 'duplicate_event_id', retriable: false, eventIds: ['id-1', 'id-2'] });
  });

  it('names at most ten ids and streams in the message, and keeps them all on the error', () => {
    const eventIds = Array.from({ length: 500 }, (_, i) => `id-${i}`);
    const foreign = Array.from({ length: 25 }, (_, i) => ({ streamId: `s-${i}`, eventIds: eventIds.slice(i * 20, i * 20 + 20) }));
    const error = translateError(pgError('TY002', JSON.stringify(foreign))) as DuplicateEventIdError;
    expect(error.eventIds).toEqual(eventIds);
    expect(error.message).toBe(
      'event ids already stored in another stream (appending to s-0, s-1, s-2, s-3, s-4, s-5, s-6, s-7, s-8, s-9, and 15 more): ' +
        'id-0, id-1, id-2, id-3, id-4, id-5, id-6, id-7, id-8, id-9, and 490 more',
    );

    const conflicts = Array.from({ length: 11 }, (_, i) => ({ streamId: `s-${i}`, expected: '1', actual: '2' }));
    const wrong = translateError(pgError('TY001', JSON.stringify(conflicts))) as WrongExpectedRevisionError;
    expect(wrong.streamIds).toHaveLength(11);
    expect(wrong.message).toMatch(/^wrong expected revision: s-0 expected 1, actual 2; (.+; ){9}and 1 more$/);
    expect(wrong.message).not.toContain('s-10');
  });

  it.each(['ECONNREFUSED', '57P01', '08006'])('wraps connection failure %s as EventStoreUnavailableError', (code) => {
    const cause = pgError(code);
    const error = translateError(cause);
    expect(error).toBeInstanceOf(EventStoreUnavailableError);
    expect(error).toMatchObject({ code: 'event_store_unavailable', retriable: true, cause });
  });

  it('passes other errors through unchanged', () => {
    const other = pgError('42P01');
    expect(translateError(other)).toBe(other);
    expect(translateError(undefined)).toBeUndefined();
  });
});

describe('expected revision text', () => {
  it.each<[Parameters<typeof serializeExpectedRevision>[0], string]>([
    ['any', 'any'],
    ['no_stream', 'no_stream'],
    ['stream_exists', 'stream_exists'],
    [0n, '0'],
    [2n ** 62n, '4611686018427387904'],
  ])('round-trips %p', (expected, text) => {
    expect(serializeExpectedRevision(expected)).toBe(text);
    expect(parseExpectedRevision(text)).toBe(expected);
  });

  it('rejects a negative revision', () => {
    expect(() => serializeExpectedRevision(-1n)).toThrow(/must not be negative/);
  });
});
