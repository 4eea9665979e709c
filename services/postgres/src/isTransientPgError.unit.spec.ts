import { isTransientPgError } from './isTransientPgError';

function withCode(code: string, message = 'failed'): Error {
  return Object.assign(new Error(message), { code });
}

describe('isTransientPgError', () => {
  it.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '57P01', '57P03', '08006', '08001', '53300', '40001', '40P01', '57014', '55P03'])(
    'treats %s as transient',
    (code) => {
      expect(isTransientPgError(withCode(code))).toBe(true);
    },
  );

  // A failover (a client still connected to the demoted primary writes into a read-only node), a
  // full disk, memory or an I/O error: the server's state, which an operator or the failover
  // fixes, not the statement's.
  it.each(['25006', '40003', '53000', '53100', '53200', '57P05', '58000', '58030', '58P01'])('treats %s (the server, not the statement) as transient', (code) => {
    expect(isTransientPgError(withCode(code))).toBe(true);
  });

  it('recognises the connection losses pg reports only by message', () => {
    expect(isTransientPgError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isTransientPgError(new Error('timeout exceeded when trying to connect'))).toBe(true);
    expect(isTransientPgError(new Error('Query read timeout'))).toBe(true);
  });

  it('looks inside an AggregateError (a host that resolves to several addresses)', () => {
    expect(isTransientPgError(new AggregateError([withCode('ECONNREFUSED')], 'connect failed'))).toBe(true);
  });

  it.each(['23505', '42P01', '22P02', 'TY001', '53400', '40002', '25P02', '57P04'])('treats %s as permanent', (code) => {
    expect(isTransientPgError(withCode(code))).toBe(false);
  });

  it('is false for anything that is not an Error', () => {
    expect(isTransientPgError('ECONNREFUSED')).toBe(false);
    expect(isTransientPgError(undefined)).toBe(false);
  });
});
