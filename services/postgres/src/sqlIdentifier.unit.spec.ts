import { assertSqlIdentifier, quoteIdentifier } from './sqlIdentifier';

describe('sql identifiers', () => {
  it('accepts plain lower-case identifiers and quotes them', () => {
    expect(assertSqlIdentifier('public')).toBe('public');
    expect(quoteIdentifier('es_test_0a1b')).toBe('"es_test_0a1b"');
  });

  it.each(['', 'Public', '1abc', 'a b', 'a";drop', 'a'.repeat(64)])('rejects %j', (name) => {
    expect(() => assertSqlIdentifier(name, 'schema')).toThrow(/schema must match/);
  });
});
