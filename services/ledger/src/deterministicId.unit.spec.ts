import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { deterministicId, ledgerEventId } from './deterministicId';

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

  it('is a version 5, RFC variant UUID', () => {
    expect(deterministicId('usage:b1:e1')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('gives each event of a command its own id, the same every time', () => {
    const ids = [0, 1, 2].map((index) => ledgerEventId('usage:b1:e1', index));
    expect(new Set(ids).size).toBe(3);
    expect([0, 1, 2].map((index) => ledgerEventId('usage:b1:e1', index))).toEqual(ids);
  });
});
