import { usageEventAvroSchema } from '@tally/schemas';
import { Type, types } from 'avsc';
import fc from 'fast-check';
import { assertAvroBlocksBounded, AvroBlockBombError, AvroInvalidUtf8Error, MAX_ZERO_BYTE_ITEMS } from './avroBlockGuard';

const usageType = Type.forSchema(usageEventAvroSchema as Parameters<typeof Type.forSchema>[0]);

/** Avro's zig-zag varint of a (safe) integer. */
function varint(n: number): Buffer {
  let value = n >= 0 ? n * 2 : -n * 2 - 1;
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

const usage = (properties: Record<string, unknown> = {}) => ({
  id: 'u-1',
  customerId: 'alice',
  event: 'api_call',
  timestamp: 1_767_225_600_000,
  properties,
});

/** A usage event body whose properties map declares `count` entries, followed by `tail`. */
function mapBomb(count: number, tail = Buffer.from('abc')): Buffer {
  const empty = usageType.toBuffer(usage());
  // The empty map is its closing 0 count, the body's last byte.
  return Buffer.concat([empty.subarray(0, -1), varint(count), tail]);
}

describe('assertAvroBlocksBounded', () => {
  it('passes every well-formed usage event', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ maxLength: 12 }),
          fc.oneof(fc.constant(null), fc.boolean(), fc.double({ noNaN: true }), fc.string(), fc.integer().map((n) => BigInt(n))),
          { maxKeys: 20 },
        ),
        (properties) => {
          const wrapped = Object.fromEntries(
            Object.entries(properties).map(([key, value]) => {
              if (value === null) return [key, null];
              const branch = typeof value === 'bigint' ? 'long' : typeof value === 'number' ? 'double' : typeof value;
              return [key, { [branch]: typeof value === 'bigint' ? Number(value) : value }];
            }),
          );
          const body = usageType.toBuffer(usage(wrapped));
          expect(() => assertAvroBlocksBounded(usageType, body)).not.toThrow();
        },
      ),
    );
  });

  it('refuses a map that declares more entries than its bytes can hold, as a random body after a frame can', () => {
    for (const count of [2 ** 52, 1_000_000, 4]) {
      expect(() => assertAvroBlocksBounded(usageType, mapBomb(count))).toThrow(AvroBlockBombError);
    }
    // One entry, "k" → null, then the closing 0: as many as the bytes can hold.
    const oneEntry = mapBomb(1, Buffer.concat([varint(1), Buffer.from('k'), varint(0), varint(0)]));
    expect(() => assertAvroBlocksBounded(usageType, oneEntry)).not.toThrow();
    expect(usageType.fromBuffer(oneEntry)).toEqual(usage({ k: null }));
    // A count cut short by the end of the body is read as avsc reads it, missing bytes as zeros.
    const cut = Buffer.concat([usageType.toBuffer(usage()).subarray(0, -1), Buffer.from('f0f49dc3aaaff1', 'hex')]);
    expect(() => assertAvroBlocksBounded(usageType, cut)).toThrow(AvroBlockBombError);
    // A negative count (a block with its byte size) is bounded the same way.
    expect(() => assertAvroBlocksBounded(usageType, mapBomb(-(2 ** 40), Buffer.concat([varint(10), Buffer.from('abc')])))).toThrow(
      AvroBlockBombError,
    );
  });

  it('bounds items of no size by one budget for the whole body', () => {
    const nulls = Type.forSchema({ type: 'array', items: 'null' });
    const blocks = (...counts: number[]) => Buffer.concat([...counts.map((count) => varint(count)), varint(0)]);
    expect(() => assertAvroBlocksBounded(nulls, blocks(MAX_ZERO_BYTE_ITEMS))).not.toThrow();
    expect(nulls.fromBuffer(blocks(3))).toEqual([null, null, null]);
    expect(() => assertAvroBlocksBounded(nulls, blocks(MAX_ZERO_BYTE_ITEMS + 1))).toThrow(AvroBlockBombError);
    expect(() => assertAvroBlocksBounded(nulls, blocks(MAX_ZERO_BYTE_ITEMS, 1))).toThrow(AvroBlockBombError);
  });

  it('refuses a string that is not valid UTF-8: an id, a property name or a property value', () => {
    /** The body with the first occurrence of `marker` (ASCII) overwritten by `bytes` of the same length. */
    const corrupt = (body: Buffer, marker: string, bytes: number[]): Buffer => {
      const copy = Buffer.from(body);
      const at = copy.indexOf(marker);
      expect(at).toBeGreaterThanOrEqual(0);
      Buffer.from(bytes).copy(copy, at);
      return copy;
    };
    const body = usageType.toBuffer(usage({ zkeyz: { string: 'zvalz' } }));
    expect(() => assertAvroBlocksBounded(usageType, body)).not.toThrow();
    for (const [marker, bytes] of [
      ['u-1', [0xff, 0x2d, 0x31]], // a byte that never occurs in UTF-8
      ['zkeyz', [0x7a, 0xed, 0xa0, 0x80, 0x7a]], // an encoded surrogate (CESU-8), not UTF-8
      ['zvalz', [0x7a, 0xc3, 0x7a, 0x7a, 0x7a]], // a sequence cut short
    ] as const) {
      expect(() => assertAvroBlocksBounded(usageType, corrupt(body, marker, [...bytes]))).toThrow(AvroInvalidUtf8Error);
    }
    // Multi-byte UTF-8 passes.
    expect(() => assertAvroBlocksBounded(usageType, usageType.toBuffer({ ...usage({ 'ключ': { string: '😀' } }), id: 'é' }))).not.toThrow();
  });

  it('walks a custom long (LongType.__with) as a long', () => {
    // The methods are never called: the walk reads only the long's bytes.
    const custom = types.LongType.__with({ fromBuffer: Number, toBuffer: Buffer.from, fromJSON: Number, toJSON: Number, isValid: () => true, compare: () => 0 });
    const withCustomLongs = Type.forSchema(usageEventAvroSchema as Parameters<typeof Type.forSchema>[0], {
      typeHook: (schema) => ((schema as { type?: unknown }).type === 'long' ? custom : undefined),
    });
    // Its timestamp, read as a map count after a walk that skipped it, would be a bomb.
    expect(() => assertAvroBlocksBounded(withCustomLongs, usageType.toBuffer(usage({ n: { long: 2 ** 40 } })))).not.toThrow();
  });

  it('walks nested and recursive types', () => {
    const tree = Type.forSchema({
      type: 'record',
      name: 'Node',
      fields: [
        { name: 'at', type: 'long' },
        { name: 'tags', type: { type: 'map', values: { type: 'array', items: 'string' } } },
        { name: 'children', type: { type: 'array', items: 'Node' } },
      ],
    });
    const leaf = { at: 1, tags: {}, children: [] };
    const body = tree.toBuffer({ at: 0, tags: { a: ['x', 'y'] }, children: [leaf] });
    expect(() => assertAvroBlocksBounded(tree, body)).not.toThrow();
    // The root's children block: its count (1), the leaf, the closing 0. Claim 2^50 children instead.
    const childrenAt = body.length - tree.toBuffer(leaf).length - 2;
    expect(body[childrenAt]).toBe(varint(1)[0]);
    const bomb = Buffer.concat([body.subarray(0, childrenAt), varint(2 ** 50), body.subarray(childrenAt + 1)]);
    expect(() => assertAvroBlocksBounded(tree, bomb)).toThrow(AvroBlockBombError);
  });

  it('ends on any bytes, and whatever it passes, avsc decodes or refuses without looping', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => {
        const body = Buffer.concat([usageType.toBuffer(usage()).subarray(0, -1), Buffer.from(tail)]);
        try {
          assertAvroBlocksBounded(usageType, body);
        } catch (error) {
          expect([AvroBlockBombError, AvroInvalidUtf8Error]).toContain((error as Error).constructor);
          return;
        }
        try {
          usageType.fromBuffer(body);
        } catch {
          // Refused: what the consumer dead-letters.
        }
      }),
      { numRuns: 2_000 },
    );
  });
});
