import { ENTRY_OVERHEAD_BYTES, estimatedStringBytes, estimatedTextBytes, foldBalance, type FoldedBalance } from '@tally/domain';
import fc from 'fast-check';
import { cachedText, createBalanceStateCache, fromCachedText } from './balanceStateCache';
import { estimatedCachedBalanceBytes, keptRefs, refsOfKept, weighKeptRefs } from './cacheWeights';
import { arbitraryOpenBalance } from './testing/arbitraryOpenBalance';

const loaded = (revision: bigint): FoldedBalance => ({ state: { status: 'unopened' }, revision });

describe('createBalanceStateCache', () => {
  it('evicts the least recently used balance once full', () => {
    const cache = createBalanceStateCache(2);
    cache.set('a', loaded(1n));
    cache.set('b', loaded(2n));
    expect(cache.get('a')?.revision).toBe(1n); // a is now the most recent
    expect(cache.get('c')).toBeUndefined(); // a miss, asked for as often as b: more, since b never was
    cache.set('c', loaded(3n));
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')?.revision).toBe(1n);
    expect(cache.get('c')?.revision).toBe(3n);
    expect(cache.size).toBe(2);
  });

  it('keeps what it holds through a pass over more balances than it holds, met in turn', () => {
    const cache = createBalanceStateCache(2);
    const hits: string[] = [];
    for (let round = 1; round <= 4; round += 1) {
      for (const balanceId of ['a', 'b', 'c']) {
        if (cache.get(balanceId) !== undefined) hits.push(`${round}${balanceId}`);
        else cache.set(balanceId, loaded(BigInt(round)));
      }
    }
    // Least recently used alone, each set would push out the balance met next: no hit at all.
    expect(hits).toEqual(['2a', '2b', '3a', '3b', '4a', '4b']);
  });

  it('lets in a balance asked for more often than the one it would push out', () => {
    const cache = createBalanceStateCache(2);
    cache.set('a', loaded(1n));
    cache.set('b', loaded(2n));
    cache.get('a');
    cache.get('b');
    for (let asked = 0; asked < 2; asked += 1) expect(cache.get('c')).toBeUndefined();
    cache.set('c', loaded(3n));
    expect([cache.get('c')?.revision, cache.get('a'), cache.get('b')?.revision]).toEqual([3n, undefined, 2n]);
  });

  it('replaces and deletes entries', () => {
    const cache = createBalanceStateCache(2);
    cache.set('a', loaded(1n));
    cache.set('a', loaded(5n));
    expect(cache.size).toBe(1);
    expect(cache.get('a')?.revision).toBe(5n);
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
  });

  it('gives back exactly the state it was given, as a new object each time, micro-credits and all', () => {
    fc.assert(
      fc.property(arbitraryOpenBalance(), fc.bigInt({ min: -1n, max: 10n ** 20n }), (state, revision) => {
        const cache = createBalanceStateCache({ maxEntries: 10, maxBytes: 1024 * 1024 });
        cache.set(state.balanceId, { state, revision });
        const first = cache.get(state.balanceId);
        expect(first).toEqual({ state, revision });
        expect(cache.peek(state.balanceId)).not.toBe(first);
        expect(fromCachedText(state.balanceId, cachedText({ state, revision }))).toEqual({ state, revision });
      }),
    );
    const cache = createBalanceStateCache(1);
    cache.set('new', loaded(-1n));
    expect(cache.get('new')).toEqual(loaded(-1n));
  });

  it('keeps a folded state with the shape evolve gives it', () => {
    const folded = { state: foldBalance([{ type: 'CreditBalanceOpened', balanceId: 'bal-1', customerId: 'cus-1', productId: 'api', name: 'API', lowBalanceThreshold: null, overdraftLimit: 0n, occurredAt: '2026-01-01T00:00:00.000Z' }]), revision: 0n };
    const back = fromCachedText('bal-1', cachedText(folded));
    // The same keys in the same order: the same hidden class in V8, so evolve's code stays monomorphic.
    expect(Object.keys(back.state)).toEqual(Object.keys(folded.state));
    expect(back).toEqual(folded);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => createBalanceStateCache(0)).toThrow(/positive integer/);
  });

  it('bounded by bytes, keeps the balances whose estimated states fit, least recently used leaving first', () => {
    const perEntry = estimatedCachedBalanceBytes('a', cachedText(loaded(1n))) + ENTRY_OVERHEAD_BYTES;
    const cache = createBalanceStateCache({ maxEntries: 100, maxBytes: 2 * perEntry });
    cache.set('a', loaded(1n));
    cache.set('b', loaded(2n));
    cache.get('a');
    cache.get('c');
    cache.set('c', loaded(3n));
    expect([cache.get('a')?.revision, cache.get('b'), cache.get('c')?.revision, cache.size]).toEqual([1n, undefined, 3n, 2]);
  });
});

describe('cache weights', () => {
  const open = (holds: number, name = 'API'): FoldedBalance => ({
    revision: 7n,
    state: {
      status: 'open',
      balanceId: 'bal-1',
      customerId: 'cus-1',
      productId: 'api',
      name,
      lowBalanceThreshold: 5n,
      balance: 10n,
      held: 0n,
      holds: Object.fromEntries(Array.from({ length: holds }, (_, i) => [`hold-${i}`, { credits: 1n, expiresAt: '2026-01-01T00:00:00.000Z', reference: null }])),
      overdraftLimit: 0n,
      warned: false,
      updatedAt: '2026-01-01T00:00:00.000Z',
    },
  });

  it('weighs what a state holds: more for its holds, two bytes a character for text beyond Latin-1, never less than an unopened one', () => {
    const weigh = (balance: FoldedBalance) => estimatedCachedBalanceBytes('bal-1', cachedText(balance));
    const bare = weigh(open(0));
    expect(bare).toBeGreaterThan(weigh(loaded(0n)));
    expect(weigh(open(3))).toBeGreaterThan(bare + 3 * 40);
    // The key and the text: the text at one byte a character (V8's one-byte string), rounded to 8 ...
    const text = cachedText(open(0));
    expect(bare).toBe(estimatedTextBytes('bal-1') + 16 + Math.ceil(text.length / 8) * 8);
    // ... unless a character is beyond Latin-1: then at two, as any string.
    expect(weigh(open(0, 'AP€'))).toBe(estimatedTextBytes('bal-1') + estimatedStringBytes(cachedText(open(0, 'AP€'))));
  });

  it('keeps a customer\'s balances compactly, one string per product, and gives them back as they were', () => {
    const refs = [
      { id: 'bal-1', customerId: 'cus-1', productId: 'api' },
      { id: 'bal-2', customerId: 'cus-1', productId: 'storage' },
    ];
    const productIds = new Map<string, string>();
    const kept = keptRefs(refs, productIds);
    expect(refsOfKept('cus-1', kept)).toEqual(refs);
    expect([...productIds.keys()]).toEqual(['api', 'storage']);
    const again = keptRefs([{ ...refs[0]!, productId: ['a', 'p', 'i'].join('') }], productIds);
    expect(again[1]).toBe(kept[1]);
    expect(weighKeptRefs('cus-1', kept)).toBeGreaterThan(weighKeptRefs('cus-1', []) + 2 * 40);
  });
});
