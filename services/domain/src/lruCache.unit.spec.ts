import fc from 'fast-check';
import { ENTRY_OVERHEAD_BYTES, estimatedBigIntBytes, estimatedStringBytes, estimatedTextBytes, LruCache } from './lruCache';

type Op =
  | { readonly kind: 'set'; readonly key: number; readonly weight: number }
  | { readonly kind: 'get'; readonly key: number }
  | { readonly kind: 'delete'; readonly key: number };

const ops: fc.Arbitrary<Op[]> = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('set' as const), key: fc.integer({ min: 0, max: 15 }), weight: fc.integer({ min: 0, max: 400 }) }),
    fc.record({ kind: fc.constant('get' as const), key: fc.integer({ min: 0, max: 15 }) }),
    fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 15 }) }),
  ),
  { maxLength: 200 },
);

/** The reference: entries in order of use (least recent first), each with its weight. */
function model(operations: readonly Op[], maxEntries: number, maxBytes: number): Array<{ key: number; weight: number }> {
  let entries: Array<{ key: number; weight: number }> = [];
  for (const op of operations) {
    const found = entries.find((entry) => entry.key === op.key);
    if (op.kind === 'get') {
      if (found !== undefined) entries = [...entries.filter((entry) => entry !== found), found];
    } else if (op.kind === 'delete') {
      entries = entries.filter((entry) => entry !== found);
    } else {
      entries = entries.filter((entry) => entry !== found);
      const weight = ENTRY_OVERHEAD_BYTES + op.weight;
      if (weight > maxBytes) continue;
      entries.push({ key: op.key, weight });
      while (entries.length > maxEntries || entries.reduce((sum, entry) => sum + entry.weight, 0) > maxBytes) entries.shift();
    }
  }
  return entries;
}

describe('LruCache', () => {
  it('never holds more estimated bytes or entries than its bounds, and evicts in order of least recent use', () => {
    fc.assert(
      fc.property(ops, fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 2000 }), (operations, maxEntries, maxBytes) => {
        // The weight travels in the value, so the weigh function is a pure read of the entry.
        const cache = new LruCache<number, { weight: number }>({ maxEntries, maxBytes, weigh: (_key, value) => value.weight });
        const seen = new Map<number, number>();
        for (const op of operations) {
          if (op.kind === 'set') {
            cache.set(op.key, { weight: op.weight });
            seen.set(op.key, op.weight);
          } else if (op.kind === 'get') cache.get(op.key);
          else cache.delete(op.key);
          expect(cache.bytes).toBeLessThanOrEqual(maxBytes);
          expect(cache.size).toBeLessThanOrEqual(maxEntries);
        }
        const expected = model(operations, maxEntries, maxBytes);
        expect(cache.size).toBe(expected.length);
        expect(cache.bytes).toBe(expected.reduce((sum, entry) => sum + entry.weight, 0));
        // Every key the model holds is there with its last value; the others are gone.
        const held = new Set(expected.map((entry) => entry.key));
        for (const key of seen.keys()) {
          expect(cache.get(key) !== undefined).toBe(held.has(key));
        }
      }),
    );
  });

  it('with frequency admission, holds within its bounds and never a value older than the key\'s last set', () => {
    fc.assert(
      fc.property(ops, fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 2000 }), (operations, maxEntries, maxBytes) => {
        const cache = new LruCache<number, { weight: number }>({ maxEntries, maxBytes, weigh: (_key, value) => value.weight, admission: 'frequency' });
        const last = new Map<number, { weight: number }>();
        for (const op of operations) {
          if (op.kind === 'set') {
            const value = { weight: op.weight };
            cache.set(op.key, value);
            last.set(op.key, value);
          } else if (op.kind === 'get') cache.get(op.key);
          else {
            cache.delete(op.key);
            last.delete(op.key);
          }
          expect(cache.bytes).toBeLessThanOrEqual(maxBytes);
          expect(cache.size).toBeLessThanOrEqual(maxEntries);
        }
        for (let key = 0; key <= 15; key += 1) {
          const held = cache.peek(key);
          if (held !== undefined) expect(held).toBe(last.get(key));
        }
      }),
    );
  });

  it('with frequency admission, lets a new key into a full cache only if it was asked for more often than the least recently used', () => {
    const cache = new LruCache<string, number>({ maxEntries: 2, admission: 'frequency' });
    cache.set('a', 1);
    cache.set('b', 2);
    cache.get('a');
    cache.get('b');
    cache.get('c');
    cache.set('c', 3); // asked for once, as often as a: not kept
    expect([cache.peek('a'), cache.peek('b'), cache.peek('c')]).toEqual([1, 2, undefined]);
    cache.get('c');
    cache.set('c', 3); // twice now: it pushes a out
    expect([cache.peek('a'), cache.peek('b'), cache.peek('c')]).toEqual([undefined, 2, 3]);
    cache.set('b', 20); // a key held is always updated
    expect(cache.peek('b')).toBe(20);
  });

  it('wouldKeep says whether a set now would keep the value, and changes nothing', () => {
    fc.assert(
      fc.property(
        ops,
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 2000 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 0, max: 400 }),
        (operations, maxEntries, maxBytes, weighed, key, weight) => {
          const bounds = weighed ? { maxEntries, maxBytes, weigh: (_key: number, value: { weight: number }) => value.weight } : { maxEntries };
          const cache = new LruCache<number, { weight: number }>({ ...bounds, admission: 'frequency' });
          for (const op of operations) {
            if (op.kind === 'set') cache.set(op.key, { weight: op.weight });
            else if (op.kind === 'get') cache.get(op.key);
            else cache.delete(op.key);
          }
          const order = [...cache.keysOldestFirst()];
          const predicted = cache.wouldKeep(key, weight);
          const asked = cache.wouldKeep(key, weight);
          // Asking neither counts nor reorders: the same answer again, the same order.
          expect(asked).toBe(predicted);
          expect([...cache.keysOldestFirst()]).toEqual(order);
          // Asked for the lightest value, a no is a no at this weight too.
          if (!cache.wouldKeep(key)) expect(predicted).toBe(false);
          const value = { weight };
          cache.set(key, value);
          expect(cache.peek(key) === value).toBe(predicted);
        },
      ),
    );
  });

  it('evicts the least recently used entry first when bounded by entries only', () => {
    const cache = new LruCache<string, number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3);
    expect(cache.get('b')).toBeUndefined();
    expect([cache.get('a'), cache.get('c'), cache.size, cache.bytes]).toEqual([1, 3, 2, 0]);
  });

  it('makes room for a heavy entry by evicting several light ones, oldest first', () => {
    const cache = new LruCache<string, number>({ maxBytes: 3 * (ENTRY_OVERHEAD_BYTES + 100), weigh: (_key, weight) => weight });
    cache.set('a', 100);
    cache.set('b', 100);
    cache.set('c', 100);
    cache.get('a');
    cache.set('d', 100 + ENTRY_OVERHEAD_BYTES + 50); // needs the room of two: b and c leave, a (used) stays
    expect([cache.get('b'), cache.get('c'), cache.get('a'), cache.size]).toEqual([undefined, undefined, 100, 2]);
  });

  it('does not keep an entry heavier than the whole budget, nor the value it replaced', () => {
    const cache = new LruCache<string, number>({ maxBytes: ENTRY_OVERHEAD_BYTES + 10, weigh: (_key, weight) => weight });
    cache.set('a', 5);
    cache.set('a', 11);
    expect([cache.get('a'), cache.size, cache.bytes]).toEqual([undefined, 0, 0]);
  });

  it('refuses bounds that bound nothing or cannot be weighed, and weights that are not byte counts', () => {
    expect(() => new LruCache(0)).toThrow(/positive integer/);
    expect(() => new LruCache({})).toThrow(/positive integer/);
    expect(() => new LruCache({ maxBytes: 1000 })).toThrow(/weigh/);
    const cache = new LruCache<string, number>({ maxBytes: 1000, weigh: () => Number.NaN });
    expect(() => cache.set('a', 1)).toThrow(/finite number/);
  });

  it('lists its keys least recently used first, without changing that order', () => {
    const cache = new LruCache<string, number>(3);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('c', 3);
    cache.get('a');
    cache.peek('b');
    expect([...cache.keysOldestFirst()]).toEqual(['b', 'c', 'a']);
    expect([...cache.keysOldestFirst()]).toEqual(['b', 'c', 'a']);
  });

  it('tells onEvict of each entry its bounds make leave, by entries or by bytes, and of no entry deleted or replaced', () => {
    const evicted: string[] = [];
    const byEntries = new LruCache<string, number>({ maxEntries: 2, onEvict: (key, value) => evicted.push(`${key}=${value}`) });
    byEntries.set('a', 1);
    byEntries.set('b', 2);
    byEntries.set('b', 3);
    byEntries.delete('a');
    byEntries.set('c', 4);
    expect(evicted).toEqual([]);
    byEntries.set('d', 5);
    expect(evicted).toEqual(['b=3']);

    const byBytes = new LruCache<string, number>({ maxBytes: 3 * (ENTRY_OVERHEAD_BYTES + 10), weigh: () => 10, onEvict: (key) => evicted.push(key) });
    for (const key of ['x', 'y', 'z', 'w']) byBytes.set(key, 0);
    expect(evicted).toEqual(['b=3', 'x']);
    byBytes.clear();
    expect(evicted).toEqual(['b=3', 'x']);
  });

  it('estimates strings at two bytes a character and bigints by their 64-bit digits', () => {
    expect(estimatedStringBytes('')).toBe(16);
    expect(estimatedStringBytes('bal-000000000001')).toBe(48);
    expect(estimatedBigIntBytes(0n)).toBe(24);
    expect(estimatedBigIntBytes(-(2n ** 64n))).toBe(32);
  });

  it('estimates a text at one byte a character while every character is Latin-1, else at two', () => {
    expect(estimatedTextBytes('')).toBe(16);
    expect(estimatedTextBytes('bal-000000000001')).toBe(32);
    expect(estimatedTextBytes('Zürich, 10 Ω')).toBe(estimatedStringBytes('Zürich, 10 Ω'));
    expect(estimatedTextBytes('Zürich, 10 €'.replace('€', 'ÿ'))).toBe(32);
    expect(estimatedTextBytes('😀')).toBe(estimatedStringBytes('😀'));
  });
});
