/**
 * A map bounded by entries: once `capacity` is reached, the least recently used entry leaves
 * first. A plain data structure (like Map, not a part to be wired), shared by the consumer's
 * caches (balance states, the balance registry), so their memory stays bounded however many
 * balances and customers there are.
 */
export class LruCache<K, V> {
  // A Map iterates in insertion order: re-inserting on use keeps the least recent entry first.
  private readonly entries = new Map<K, V>();

  constructor(private readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new Error('cache capacity must be a positive integer');
  }

  /** The value, which becomes the most recently used. */
  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
