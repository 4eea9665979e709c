/**
 * A map bounded by entries: once `capacity` is reached, the least recently used entry leaves
 * first. Pure data structure, shared by the consumer's caches (balance states, the balance
 * registry), so their memory stays bounded however many balances and customers there are.
 */
export interface LruCache<K, V> {
  /** The value, which becomes the most recently used. */
  get(key: K): V | undefined;
  set(key: K, value: V): void;
  delete(key: K): void;
  clear(): void;
  readonly size: number;
}

export function createLruCache<K, V>(capacity: number): LruCache<K, V> {
  if (!Number.isSafeInteger(capacity) || capacity < 1) throw new Error('cache capacity must be a positive integer');
  // A Map iterates in insertion order: re-inserting on use keeps the least recent entry first.
  const entries = new Map<K, V>();
  return {
    get(key) {
      const value = entries.get(key);
      if (value !== undefined) {
        entries.delete(key);
        entries.set(key, value);
      }
      return value;
    },
    set(key, value) {
      entries.delete(key);
      entries.set(key, value);
      if (entries.size > capacity) entries.delete(entries.keys().next().value!);
    },
    delete(key) {
      entries.delete(key);
    },
    clear() {
      entries.clear();
    },
    get size() {
      return entries.size;
    },
  };
}
