import type { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { createSignedTokens } from './signedTokens';
import { createMemoryTokenRevocations, createRedisTokenRevocations, TokenRevocationsUnavailableError } from './tokenRevocations';

const SECRET = 'unit-session-secret-0123456789abcdef';
const tokens = createSignedTokens({ secret: SECRET, sessionTtlMs: 60_000, portalTtlMs: 60_000 });
const NOW = new Date('2030-01-01T00:00:00.000Z');

describe('portal link revocation by epoch', () => {
  it('signs the epoch into the link and reads it back; a link signed before epochs has none', async () => {
    const { token, claims } = await tokens.issuePortalToken('acme', 7, NOW);
    expect(claims.revocationEpoch).toBe(7);
    expect(await tokens.verifyPortalToken(token, NOW)).toMatchObject({ customerId: 'acme', revocationEpoch: 7 });

    const legacy = await new SignJWT({ iat_ms: NOW.getTime() })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('tally')
      .setAudience('tally-portal')
      .setSubject('acme')
      .setIssuedAt(NOW.getTime() / 1000)
      .setExpirationTime(NOW.getTime() / 1000 + 60)
      .sign(new TextEncoder().encode(SECRET));
    expect(await tokens.verifyPortalToken(legacy, NOW)).toMatchObject({ customerId: 'acme', revocationEpoch: undefined, issuedAt: NOW });
  });

  it('in memory: voids the links issued before a revocation, whatever the clocks, and admits those after', async () => {
    const revocations = createMemoryTokenRevocations();
    const issue = async (customerId: string) => (await tokens.issuePortalToken(customerId, await revocations.portalLinkEpoch(customerId), NOW)).claims;
    const before = await issue('acme');
    const other = await issue('globex');
    await revocations.revokePortalLinks('acme');
    // Issued by a clock an hour behind the one before: still after the revocation.
    const after = { ...(await issue('acme')), issuedAt: new Date(NOW.getTime() - 3_600_000) };
    expect(await revocations.isPortalLinkRevoked(before)).toBe(true);
    expect(await revocations.isPortalLinkRevoked(after)).toBe(false);
    expect(await revocations.isPortalLinkRevoked(other)).toBe(false);
    // A link from before epochs counts as issued at 0: void once the customer's links were revoked.
    expect(await revocations.isPortalLinkRevoked({ customerId: 'acme', revocationEpoch: undefined, issuedAt: NOW })).toBe(true);
    expect(await revocations.isPortalLinkRevoked({ customerId: 'globex', revocationEpoch: undefined, issuedAt: NOW })).toBe(false);
  });

  it('in Redis: issues no epoch while Redis does not answer, rather than guess one', async () => {
    const down = new Error('connect ECONNREFUSED');
    const redis = { get: async () => Promise.reject(down), incr: async () => Promise.reject(down), mget: async () => Promise.reject(down) } as unknown as Redis;
    const revocations = createRedisTokenRevocations({ redis, keyPrefix: 'unit:' });
    await expect(revocations.portalLinkEpoch('acme')).rejects.toBeInstanceOf(TokenRevocationsUnavailableError);
    await expect(revocations.revokePortalLinks('acme')).rejects.toBeInstanceOf(TokenRevocationsUnavailableError);
    await expect(revocations.isPortalLinkRevoked({ customerId: 'acme', revocationEpoch: 0, issuedAt: NOW })).rejects.toBeInstanceOf(TokenRevocationsUnavailableError);
    await expect(revocations.isPortalLinkRevoked({ customerId: 'acme', revocationEpoch: undefined, issuedAt: NOW })).rejects.toBeInstanceOf(TokenRevocationsUnavailableError);
  });
});
