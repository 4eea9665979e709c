/**
 * How often each key was asked for lately: TinyLFU's frequency sketch (Einziger, Friedman and
 * Manes, "TinyLFU: A Highly Efficient Cache Admission Policy", ACM TOS 2017), as Caffeine's
 * FrequencySketch keeps it. A count-min sketch of four rows of counters that stop at 15; once it
 * has counted ten times its width, every counter is halved, so popularity that is not renewed
 * fades. An estimate may count more than a key's own (keys sharing a counter add up), never less
 * than its halved count. Deterministic: the same keys in the same order give the same estimates.
 *
 * Written here rather than taken from npm: no maintained package keeps TinyLFU's aging sketch
 * (bloom-filters' CountMinSketch has unbounded counters in arrays of doubles and never forgets).
 */
export class FrequencySketch {
  private readonly table: Uint8Array;
  private readonly width: number;
  private readonly sampleSize: number;
  private additions = 0;

  /** Sized for a cache of about `expectedEntries` keys: counters for a power of two at least that many, at most 2^20 per row. */
  constructor(expectedEntries: number) {
    if (!Number.isSafeInteger(expectedEntries) || expectedEntries < 1) throw new Error('a frequency sketch needs a positive number of expected entries');
    let width = 16;
    while (width < expectedEntries && width < MAX_WIDTH) width *= 2;
    this.width = width;
    this.table = new Uint8Array(width * ROWS);
    this.sampleSize = 10 * width;
  }

  /** Counts one more request for the key. */
  increment(key: string): void {
    const hash = hashKey(key);
    const step = stepOf(hash);
    let added = false;
    for (let row = 0; row < ROWS; row += 1) {
      const index = this.indexOf(row, hash, step);
      if (this.table[index]! < MAX_COUNT) {
        this.table[index]! += 1;
        added = true;
      }
    }
    if (added && ++this.additions >= this.sampleSize) this.halve();
  }

  /** The key's estimated requests since the counters were last halved (0 to 15). */
  frequency(key: string): number {
    const hash = hashKey(key);
    const step = stepOf(hash);
    let least = MAX_COUNT;
    for (let row = 0; row < ROWS; row += 1) {
      const count = this.table[this.indexOf(row, hash, step)]!;
      if (count < least) least = count;
    }
    return least;
  }

  /** The key's counter in a row: four indices from two hashes (Kirsch and Mitzenmacher). */
  private indexOf(row: number, hash: number, step: number): number {
    return row * this.width + ((hash + Math.imul(row, step)) & (this.width - 1));
  }

  private halve(): void {
    for (let index = 0; index < this.table.length; index += 1) this.table[index]! >>= 1;
    this.additions >>>= 1;
  }
}

const ROWS = 4;
const MAX_COUNT = 15;
const MAX_WIDTH = 1 << 20;

/** FNV-1a over the UTF-16 code units, then murmur3's finaliser so that every bit of the index depends on every character. */
function hashKey(key: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < key.length; index += 1) {
    hash ^= key.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return rehash(hash);
}

/** The second hash's step between rows: odd, so that the rows' indices differ. */
function stepOf(hash: number): number {
  return (rehash(hash) | 1) >>> 0;
}

function rehash(value: number): number {
  let hash = value ^ (value >>> 16);
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}
