import { createBearerAuth } from './bearerAuth';

const READ = 'read-key-0123456789abcdef0';
const ADMIN = 'admin-key-0123456789abcdef';

describe('bearer keys', () => {
  const auth = createBearerAuth([{ key: READ, scopes: ['read'] }, ADMIN]);

  it('admits each configured key with its scopes, the same verdict every time it is presented', () => {
    const first = auth.authenticate(`Bearer ${READ}`);
    expect(first).toEqual({ kind: 'key', keyId: expect.stringMatching(/^[0-9a-f]{12}$/), keyName: null, scopes: ['read'] });
    expect(auth.authenticate(`Bearer ${READ}`)).toEqual(first);
    expect(auth.authenticate(`Bearer ${ADMIN}`)).toEqual({ kind: 'key', keyId: expect.any(String), keyName: null, scopes: ['admin'] });
    expect(auth.keyById(first.kind === 'key' ? first.keyId : '')).toEqual(first);
    expect(auth.keyById('000000000000')).toBeUndefined();
  });

  it('carries the name a key was configured with, as presented and as found by its id', () => {
    const named = createBearerAuth([{ key: ADMIN, scopes: ['admin'], name: 'ops' }]);
    const principal = named.authenticate(`Bearer ${ADMIN}`);
    expect(principal).toEqual({ kind: 'key', keyId: expect.stringMatching(/^[0-9a-f]{12}$/), keyName: 'ops', scopes: ['admin'] });
    expect(named.keyById(principal.kind === 'key' ? principal.keyId : '')).toEqual(principal);
  });

  it('refuses anything that is not exactly a configured key after "Bearer "', () => {
    for (const header of [
      `Bearer ${READ}x`,
      `Bearer ${READ.slice(0, -1)}`,
      `bearer ${READ}`,
      `Bearer  ${READ}`,
      `Bearer ${READ} `,
      `Basic ${READ}`,
      READ,
      'Bearer guessed-key-000000000',
    ]) {
      expect(auth.authenticate(header)).toEqual({ kind: 'anonymous', reason: expect.any(String) });
    }
    expect(auth.authenticate(undefined)).toEqual({ kind: 'anonymous', reason: 'the Authorization header is missing' });
  });

  it('never admits a key it was not configured with, whatever was presented before', () => {
    const other = createBearerAuth(['another-key-0123456789abcd']);
    expect(auth.authenticate(`Bearer ${READ}`).kind).toBe('key');
    expect(other.authenticate(`Bearer ${READ}`).kind).toBe('anonymous');
  });
});
