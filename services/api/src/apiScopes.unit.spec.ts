import { parseApiKeys, scopesGrant } from './apiScopes';

describe('parseApiKeys', () => {
  it('reads key:scope+scope entries, a plain key being admin', () => {
    expect(parseApiKeys(' a-key-0123456789abc:read+write , b-key-0123456789abc:ingest,c-key-0123456789abc')).toEqual([
      { key: 'a-key-0123456789abc', scopes: ['read', 'write'] },
      { key: 'b-key-0123456789abc', scopes: ['ingest'] },
      { key: 'c-key-0123456789abc', scopes: ['admin'] },
    ]);
  });

  it('reads a name after the scopes', () => {
    expect(parseApiKeys('a-key-0123456789abc:admin:ops@example.com,b-key-0123456789abc:read+write:billing-backend')).toEqual([
      { key: 'a-key-0123456789abc', scopes: ['admin'], name: 'ops@example.com' },
      { key: 'b-key-0123456789abc', scopes: ['read', 'write'], name: 'billing-backend' },
    ]);
  });

  it.each([
    ['secret-key-0123456789:reed', /key 1: unknown scope\(s\) "reed"/],
    ['secret-key-0123456789::ops', /key 1: unknown scope/],
    ['secret-key-0123456789:admin:', /key 1: a name is 1 to 64/],
    ['secret-key-0123456789:admin:-ops', /key 1: a name is 1 to 64/],
    ['secret-key-0123456789:admin:o p', /key 1: a name is 1 to 64/],
    [`secret-key-0123456789:admin:${'n'.repeat(65)}`, /key 1: a name is 1 to 64/],
    ['secret-key-0123456789:admin:ops:more', /key 1: an entry is key:scopes:name/],
    ['secret-key-0123456789:admin:ops,other-secret-key-0123:read:ops', /key 2: the name "ops" is taken/],
    ['secret-key-0123456789:', /key 1: unknown scope/],
    ['short:read', /key 1: every key must be at least 16/],
    ['ok-key-0123456789abc,sec ret-key-0123456789', /key 2: keys are printable ASCII/],
    // "$OPS,$BACKEND" with $BACKEND unset: one key fewer than meant, never silently.
    ['secret-key-0123456789,,other-secret-key-0123', /key 2: an empty entry in the list/],
    ['secret-key-0123456789,', /key 2: an empty entry in the list/],
    [', secret-key-0123456789', /key 1: an empty entry in the list/],
  ])('refuses %j naming the key by its place, never its text', (text, message) => {
    expect(() => parseApiKeys(text)).toThrow(message);
    expect(() => parseApiKeys(text)).not.toThrow(/secret/);
  });
  it.each(['', ',', ' , ', ',,'])('reads %j, which holds no entry at all, as no key: the caller says what that means', (text) => {
    expect(parseApiKeys(text)).toEqual([]);
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
