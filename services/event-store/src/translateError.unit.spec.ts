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
