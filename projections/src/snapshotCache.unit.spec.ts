import type { OpenBalance } from '@tally/domain';
import type { PositionedBalance } from './positionedBalance';
import { createSnapshotCache } from './snapshotCache';

const balance = (balanceId: string, position: bigint): PositionedBalance => ({
  state: { balanceId } as OpenBalance,
  revision: 0n,
  position,
});

describe('snapshot cache', () => {
  it('knows every balance of its generation until it first evicts one', () => {
    const cache = createSnapshotCache(2);
    cache.set(balance('a', 1n));
    cache.set(balance('b', 2n));
    expect(cache.complete).toBe(true);
    cache.set(balance('c', 3n));
    expect(cache.complete).toBe(false);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('c')?.position).toBe(3n);
  });

  it('evicts the least recently written balance, not the first one ever written', () => {
    const cache = createSnapshotCache(2);
    cache.set(balance('a', 1n));
    cache.set(balance('b', 2n));
    cache.set(balance('a', 3n));
    cache.set(balance('c', 4n));
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')?.position).toBe(3n);
  });

  it('holds nothing at capacity 0, so every balance is read from Redis', () => {
    const cache = createSnapshotCache(0);
    cache.set(balance('a', 1n));
    expect(cache.get('a')).toBeUndefined();
    expect(cache.complete).toBe(false);
  });
});
