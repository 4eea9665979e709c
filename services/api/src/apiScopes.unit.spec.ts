import { parseApiKeys, scopesGrant } from './apiScopes';

describe('parseApiKeys', () => {
  it('reads key:scope+scope entries, a plain key being admin', () => {
    expect(parseApiKeys(' a-key-0123456789abc:read+write , b-key-0123456789abc:ingest,c-key-0123456789abc')).toEqual([
      { key: 'a-key-0123456789abc', scopes: ['read', 'write'] },
      { key: 'b-key-0123456789abc', scopes: ['ingest'] },
      { key: 'c-key-0123456789abc', scopes: ['admin'] },
    ]);
  });

  it.each([
    ['secret-key-0123456789:reed', /key 1: unknown scope\(s\) "reed"/],
    ['secret-key-0123456789:', /key 1: unknown scope/],
    ['short:read', /key 1: every key must be at least 16/],
    ['ok-key-0123456789abc,sec ret-key-0123456789', /key 2: keys are printable ASCII/],
  ])('refuses %j naming the key by its place, never its text', (text, message) => {
    expect(() => parseApiKeys(text)).toThrow(message);
    expect(() => parseApiKeys(text)).not.toThrow(/secret/);
  });
});

describe('scopesGrant', () => {
  it.each([
    [['admin'], 'ingest', true],
    [['admin'], 'write', true],
    [['write'], 'read', true],
    [['write'], 'admin', false],
    [['write'], 'ingest', false],
    [['read'], 'write', false],
    [['ingest'], 'read', false],
    [['read', 'ingest'], 'ingest', true],
  ] as const)('%j grants %s: %s', (held, needed, granted) => {
    expect(scopesGrant(held, needed)).toBe(granted);
  });
});
