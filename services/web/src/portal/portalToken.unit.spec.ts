import { tokenCustomer } from './portalToken';

/** A token as the API signs it: base64url JSON parts (unpadded); the signature is not read here. */
function tokenFor(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
  return `${part({ alg: 'HS256' })}.${part(claims)}.signature`;
}

describe("the portal token's customer", () => {
  it('reads a customer id beyond ASCII as it was signed, so the requests name that customer', () => {
    for (const customerId of ['müller', 'café-β', '顧客-42', 'emoji-🙂']) {
      expect(tokenCustomer(tokenFor({ sub: customerId, exp: 1_800_000_000 }))).toEqual({ customerId, expiresAt: new Date(1_800_000_000_000) });
    }
  });

  it('reads an ASCII id and its expiry', () => {
    expect(tokenCustomer(tokenFor({ sub: 'acme', exp: 1_800_000_000 }))).toEqual({ customerId: 'acme', expiresAt: new Date(1_800_000_000_000) });
  });

  it('refuses what is not a token of a customer: no payload, not base64, not UTF-8, not JSON, no subject or expiry', () => {
    // {"sub":"\xC3(","exp":1}: a lead byte without its continuation, which no signed id has.
    const notUtf8 = Buffer.concat([Buffer.from('{"sub":"'), Buffer.from([0xc3, 0x28]), Buffer.from('","exp":1}')]).toString('base64url');
    for (const token of ['', 'abc', 'abc.def', `x.${notUtf8}.y`, `x.${Buffer.from('not json').toString('base64url')}.y`, tokenFor({ sub: 'acme' }), tokenFor({ exp: 1 }), tokenFor({ sub: 7, exp: 1 })]) {
      expect({ token, claims: tokenCustomer(token) }).toEqual({ token, claims: undefined });
    }
  });
});
