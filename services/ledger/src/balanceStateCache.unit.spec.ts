import type { FoldedBalance } from '@tally/domain';
import { createBalanceStateCache } from './balanceStateCache';

const loaded = (revision: bigint): FoldedBalance => ({ state: { status: 'unopened' }, revision });

describe('createBalanceStateCache', () => {
  it('evicts the least recently used balance once full', () => {
    const cache = createBalanceStateCache(2);
    cache.set('a', loaded(1n));
    cache.set('b', loaded(2n));
    expect(cache.get('a')?.revision).toBe(1n); // a is now the most recent
    cache.set('c', loaded(3n));
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')?.revision).toBe(1n);
    expect(cache.get('c')?.revision).toBe(3n);
    expect(cache.size).toBe(2);
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

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => createBalanceStateCache(0)).toThrow(/positive integer/);
  });
});
