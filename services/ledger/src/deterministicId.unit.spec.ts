import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { commandIds, deterministicId, holdIdOf, idPart, joinIdParts, ledgerEventId, meteredUsageMarker, parseHoldId, purchaseKeyMarker, splitIdParts } from './deterministicId';

/** RFC 9562 UUID v5 computed the long way, to check the one-shot path against. */
function referenceV5(namespaceHex: string, name: string): string {
  const bytes = createHash('sha1').update(Buffer.from(namespaceHex, 'hex')).update(name, 'utf8').digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

describe('deterministicId', () => {
  it('is the UUID v5 of the name in Tally namespace, for any name', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (name) => {
        expect(deterministicId(name)).toBe(referenceV5('6c1b7f9e5d0a5c3e9f4b2a1d8e7c6b5a', name));
      }),
    );
  });

  it('is the same UUID v5 for names around and past the 1,008 bytes it hashes in place, multi-byte characters at the edge', () => {
    for (const name of ['a'.repeat(1007), 'a'.repeat(1008), 'a'.repeat(1009), `${'a'.repeat(1006)}é`, `${'a'.repeat(1007)}é`, '😀'.repeat(300), 'x'.repeat(5000)]) {
      expect(deterministicId(name)).toBe(referenceV5('6c1b7f9e5d0a5c3e9f4b2a1d8e7c6b5a', name));
    }
    // And a short name after a long one: nothing of the longer one is left in what is hashed.
    expect(deterministicId('usage:b1:e1')).toBe(referenceV5('6c1b7f9e5d0a5c3e9f4b2a1d8e7c6b5a', 'usage:b1:e1'));
  });

  it('is a version 5, RFC variant UUID', () => {
    expect(deterministicId('usage:b1:e1')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('gives each event of a command its own id, the same every time', () => {
    const ids = [0, 1, 2].map((index) => ledgerEventId('usage:b1:e1', index));
    expect(new Set(ids).size).toBe(3);
    expect([0, 1, 2].map((index) => ledgerEventId('usage:b1:e1', index))).toEqual(ids);
  });
});

describe('multi-part ids', () => {
  const part = fc.string({ unit: fc.constantFrom('a', 'b', ':', '%', '3', 'A', '2', '5', 'é') });

  it('gives distinct tuples distinct ids', () => {
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 4 }), fc.array(part, { minLength: 1, maxLength: 4 }), (a, b) => {
        fc.pre(a.length !== b.length || a.some((value, index) => value !== b[index]));
        expect(joinIdParts(a)).not.toBe(joinIdParts(b));
      }),
    );
  });

  it('splits back into the parts it joined', () => {
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 4 }), (parts) => {
        expect(splitIdParts(joinIdParts(parts))).toEqual(parts);
      }),
    );
  });

  it('leads from a hold id to its balance and key, and refuses strings no hold id is', () => {
    fc.assert(
      fc.property(part.filter((p) => p.length > 0), part.filter((p) => p.length > 0), (balanceId, key) => {
        expect(parseHoldId(holdIdOf(balanceId, key))).toEqual({ balanceId, idempotencyKey: key });
      }),
    );
    expect(holdIdOf('b:1', 'job%7')).toBe('b%3A1:job%257');
    for (const bad of ['', 'b', 'b:', ':k', 'a:b:c', 'b:%3', 'b:%41']) expect(parseHoldId(bad)).toBeUndefined();
  });

  it('gives distinct grants, usages and requests distinct command ids', () => {
    fc.assert(
      fc.property(part, part, part, part, fc.nat(), (s1, p1, s2, p2, period) => {
        fc.pre(s1 !== s2 || p1 !== p2);
        expect(commandIds.grant(s1, p1, period)).not.toBe(commandIds.grant(s2, p2, period));
        expect(commandIds.usage(s1, p1)).not.toBe(commandIds.usage(s2, p2));
        expect(commandIds.request(s1, 'top-up', p1)).not.toBe(commandIds.request(s2, 'top-up', p2));
        expect(meteredUsageMarker(s1, p1)).not.toBe(meteredUsageMarker(s2, p2));
      }),
    );
  });

  it("fences a purchase request by its balance, key and body's digest, never meeting a metered usage's marker", () => {
    fc.assert(
      fc.property(part, part, fc.option(part, { nil: undefined }), part, part, (balance, key, digest, customer, usage) => {
        expect(purchaseKeyMarker(balance, key, digest)).not.toBe(meteredUsageMarker(customer, usage));
        expect(purchaseKeyMarker(balance, key, digest)).toBe(purchaseKeyMarker(balance, key, digest));
        expect(purchaseKeyMarker(balance, key, digest)).not.toBe(purchaseKeyMarker(balance, key, `${digest ?? ''}x`));
      }),
    );
  });

  it('separates the collision of issue 10: subscription s:x on p against s on x:p', () => {
    expect(commandIds.grant('s:x', 'p', 1)).toBe('grant:s%3Ax:p:1');
    expect(commandIds.grant('s', 'x:p', 1)).toBe('grant:s:x%3Ap:1');
  });

  it('leaves every id whose parts hold neither ":" nor "%" as it was before the encoding', () => {
    fc.assert(
      fc.property(fc.string().filter((value) => !value.includes(':') && !value.includes('%')), (value) => {
        expect(idPart(value)).toBe(value);
      }),
    );
    // The exact strings stored ledgers were derived from.
    expect(commandIds.usage('e1', 'b1')).toBe('usage:b1:e1');
    expect(commandIds.grant('sub-1', 'api-credits', 3)).toBe('grant:sub-1:api-credits:3');
    expect(commandIds.request('b1', 'top-up', 'key-1')).toBe('top-up:b1:key-1');
    expect(commandIds.open('b1')).toBe('open:b1');
  });
});
