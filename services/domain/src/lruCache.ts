import { LRUCache } from 'lru-cache';
import { FrequencySketch } from './frequencySketch';

/**
 * How an LruCache is bounded: by entries, by estimated bytes, or both (whichever is reached
 * first makes the least recently used entries leave).
 */
export interface LruCacheBounds<K, V> {
  /** Most entries held. */
  readonly maxEntries?: number;
  /**
   * Most estimated bytes held: the sum of `weigh` over the entries, plus ENTRY_OVERHEAD_BYTES
   * each for the cache's own structures. Needs `weigh`.
   */
  readonly maxBytes?: number;
  /**
   * An entry's estimated size in bytes, key included (see estimatedStringBytes and the
   * constants below). Called once per `set` and never again for that entry (its weight is kept),
   * so it must be cheap: count what the value holds, do not serialise it.
   */
  readonly weigh?: (key: K, value: V) => number;
  /** Called with each entry the bounds make leave (not one deleted, cleared or replaced by a set, nor one never admitted). */
  readonly onEvict?: (key: K, value: V) => void;
  /**
   * `'frequency'`: once full, a new key is kept only if it was asked for (`get`) more often
   * lately than the entry it would push out, as TinyLFU admits (see FrequencySketch); a key
   * already held is always updated. Without it every set is kept, and a pass over more keys than
   * the cache holds (keys met in turn, a backfill) evicts every entry before it is met again, so
   * nothing hits and every entry is garbage; with it the cache keeps what it holds through such a
   * pass, and a key asked for often gets in. For caches of what can be read again, never for a
   * cache whose entries must be kept (a set not admitted is as if evicted at once, without onEvict).
   */
  readonly admission?: 'frequency';
}

/*
 * Estimates of V8's heap sizes (64-bit, without pointer compression, as Node 20's builds are),
 * rounded up so that a cache's estimate is a bound on what its entries hold, not an average.
 * Shared strings (the same id held by two entries) are counted every time, which only makes
 * the estimate larger. How they compare with the heap: @tally/ledger's cacheWeights.ts.
 */
/** A string's header (map, hash, length), plus its characters: 2 bytes each, enough for either representation V8 picks. */
export function estimatedStringBytes(text: string): number {
  return 16 + roundUp8(text.length * 2);
}
const BEYOND_LATIN1 = /[\u0100-\uffff]/;
/**
 * A string V8 may hold at one byte a character: exact where every character is Latin-1, as a
 * string built from Latin-1 parts then is (a check over the text, so for what is weighed once per
 * set, such as a state kept as text); else 2 bytes each, as estimatedStringBytes.
 */
export function estimatedTextBytes(text: string): number {
  return 16 + roundUp8(text.length * (BEYOND_LATIN1.test(text) ? 2 : 1));
}
/** A plain object: header (map, properties, elements) and one 8-byte slot per own property, plus slack. */
export function estimatedObjectBytes(properties: number): number {
  return 32 + 8 * properties;
}
/** A bigint of up to 64 bits (every amount of micro-credits and revision in practice): header and one digit; 8 more per further digit. */
export function estimatedBigIntBytes(value: bigint): number {
  const magnitude = value < 0n ? -value : value;
  let digits = 1;
  for (let rest = magnitude >> 64n; rest > 0n; rest >>= 64n) digits += 1;
  return 16 + 8 * digits;
}
/** An array: its header and its backing store, one slot per element (what the elements point to is not included). */
export function estimatedArrayBytes(length: number): number {
  return 32 + 16 + 8 * length;
}
/**
 * What the cache itself holds per entry, beyond what `weigh` counts: lru-cache's index Map (key,
 * value, chain link and a bucket, counted twice because a Map's table is up to twice its size)
 * and its slot in each of its five growing arrays (keys, values, next, previous, sizes), with
 * their growth slack.
 */
export const ENTRY_OVERHEAD_BYTES = 2 * 32 + 5 * 12;

function roundUp8(bytes: number): number {
  return Math.ceil(bytes / 8) * 8;
}

function positiveInteger(value: number | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`cache ${what} must be a positive integer`);
  return value;
}

/**
 * A map bounded by entries, by estimated bytes, or both: once a bound is passed, the least
 * recently used entries leave first. A plain data structure (like Map, not a part to be wired),
 * shared by the consumer's caches (balance states, the balance registry, stream headers), so
 * their memory stays bounded however many balances and customers there are. Bounding by bytes is
 * what bounds memory: entries differ in size (a balance with many open holds, a customer with
 * many balances).
 *
 * The order of use is lru-cache's linked list, O(1) per operation however many entries leave. A
 * JS Map re-inserted on use (what this was) slows down as it evicts: V8 leaves a deleted entry's
 * slot in place until the table is rebuilt, and finding the oldest entry walks every such slot,
 * which at 100,000 customers took a tenth of the consumer's time (docs/benchmarks.md).
 * lru-cache is given no `max`: with one it allocates arrays of that length up front, and the
 * entry bound may be configured in millions. Its byte budget carries both bounds: the weights
 * when bounded by bytes (the entry count then checked after each set), else 1 per entry.
 */
export class LruCache<K extends NonNullable<unknown>, V extends NonNullable<unknown>> {
  private readonly cache: LRUCache<K, V>;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly weigh: ((key: K, value: V) => number) | undefined;
  private readonly sketch: FrequencySketch | undefined;

  /** A number is `{ maxEntries }`, as before bytes could bound it. */
  constructor(bounds: number | LruCacheBounds<K, V>) {
    const given = typeof bounds === 'number' ? { maxEntries: bounds } : bounds;
    const maxEntries = positiveInteger(given.maxEntries, 'capacity');
    const maxBytes = positiveInteger(given.maxBytes, 'byte budget');
    if (maxBytes !== undefined && given.weigh === undefined) throw new Error('a cache bounded by bytes needs a weigh function');
    if (maxEntries === undefined && maxBytes === undefined) throw new Error('cache capacity must be a positive integer (entries, bytes or both)');
    this.maxEntries = maxEntries ?? Number.POSITIVE_INFINITY;
    this.maxBytes = maxBytes ?? Number.POSITIVE_INFINITY;
    this.weigh = maxBytes === undefined ? undefined : given.weigh;
    const { onEvict } = given;
    // Sized for the entries the cache may hold: by count, or by bytes at 256 each (a cached balance weighs about 300, a customer 400).
    this.sketch = given.admission === 'frequency' ? new FrequencySketch(Math.min(this.maxEntries, Math.ceil(this.maxBytes / 256))) : undefined;
    this.cache = new LRUCache<K, V>({
      maxSize: maxBytes ?? maxEntries!,
      ...(onEvict !== undefined ? { dispose: (value: V, key: K, reason: LRUCache.DisposeReason) => reason === 'evict' && onEvict(key, value) } : {}),
    });
  }

  /** The value, which becomes the most recently used; a request counted for admission, found or not. */
  get(key: K): V | undefined {
    this.sketch?.increment(String(key));
    return this.cache.get(key);
  }

  /** The value, leaving the order of use as it is (a background reader must not keep entries alive). */
  peek(key: K): V | undefined {
    return this.cache.peek(key);
  }

  /**
   * Keeps the value as the most recently used, then drops the least recently used entries until
   * both bounds hold. A value heavier than the whole budget is not kept (nor the key's old value),
   * nor, with frequency admission, a new key asked for no more often than the entry it would push out.
   */
  set(key: K, value: V): void {
    // Asked only where admission may refuse: without it every key is admitted, held or not.
    const held = this.sketch !== undefined && this.cache.has(key);
    let size = 1;
    if (this.weigh !== undefined) {
      const weight = ENTRY_OVERHEAD_BYTES + this.weigh(key, value);
      if (!(weight >= 0) || !Number.isFinite(weight)) throw new Error(`cache entry weight must be a finite number of bytes, got ${weight}`);
      // Whole bytes, as lru-cache counts them; it drops the least recently used until the entry fits.
      size = Math.ceil(weight);
    }
    if (!this.keeps(key, size, held)) {
      // Refused: the key's old value goes too (a no-op for a key not held).
      this.cache.delete(key);
      return;
    }
    // A held key is updated in place: lru-cache moves it to the most recent end first, then
    // drops the least recently used others until its new size fits (never it: it fits alone).
    // Deleting it first and adding it again did the same, with an unlink and a relink more.
    this.cache.set(key, value, { size });
    // Never the entry just set: it is the most recently used, and the bound is at least 1.
    while (this.cache.size > this.maxEntries) this.cache.pop();
  }

  delete(key: K): void {
    this.cache.delete(key);
  }

  /**
   * Whether `set(key, …)` now would keep the value, without setting, counting or reordering
   * anything (`weight`: the value's `weigh`, for a cache bounded by bytes), so that a caller can
   * skip fetching or making what would be dropped at once. Left at 0, the answer is for the
   * lightest value, so a "no" holds at any weight (room only shrinks as the weight grows, and
   * admission compares frequencies alone).
   */
  wouldKeep(key: K, weight = 0): boolean {
    return this.keeps(key, this.weigh === undefined ? 1 : Math.ceil(ENTRY_OVERHEAD_BYTES + weight), this.cache.has(key));
  }

  /**
   * set's decision, and wouldKeep's answer: a value heavier than the whole budget never, held key
   * or not; a key held otherwise always; a new one as the bounds and admission decide.
   */
  private keeps(key: K, size: number, held: boolean): boolean {
    return size <= this.maxBytes && (held || this.admits(key, size));
  }

  /**
   * Without admission, or with room, every key. Full, a key that was asked for more often than
   * the least recently used entry, the first that would leave (compared with that one only, as
   * TinyLFU does, even where a heavy entry pushes out several). Ties keep what is held: among keys
   * asked for equally often, turnover buys no hits.
   */
  private admits(key: K, size: number): boolean {
    if (this.sketch === undefined) return true;
    if (this.cache.size < this.maxEntries && (this.weigh === undefined || this.cache.calculatedSize + size <= this.maxBytes)) return true;
    const victim = this.cache.rkeys().next();
    if (victim.done === true) return true;
    return this.sketch.frequency(String(key)) > this.sketch.frequency(String(victim.value));
  }

  /** The keys, least recently used first, leaving the order of use as it is. Do not change the cache while iterating. */
  keysOldestFirst(): IterableIterator<K> {
    return this.cache.rkeys();
  }

  clear(): void {
    this.cache.clear();
  }

  get size(): number {
    return this.cache.size;
  }

  /** Estimated bytes held (0 without a weigh function). */
  get bytes(): number {
    return this.weigh === undefined ? 0 : this.cache.calculatedSize;
  }
}
