import { LruCache, initialBalanceState, type FoldedBalance, type OpenBalance, type OpenHold } from '@tally/domain';
import { estimatedCachedBalanceBytes } from './cacheWeights';

/**
 * The consumer's memory of balances: state and revision per balance, so a batch decides without
 * reading streams. Least recently used entries go first once `capacity` is reached. An entry may
 * be stale (the API or another consumer appended since): the append's expected revision catches
 * that, and the consumer then drops the entry and reloads.
 */
export interface BalanceStateCache {
  get(balanceId: string): FoldedBalance | undefined;
  /** The entry without making it the most recently used (the write-behind flush reads this way). */
  peek(balanceId: string): FoldedBalance | undefined;
  set(balanceId: string, balance: FoldedBalance): void;
  delete(balanceId: string): void;
  readonly size: number;
}

/** Balances kept (`maxEntries`), estimated bytes they may take (`maxBytes`, see cacheWeights.ts), or both. */
export interface BalanceStateCacheBounds {
  readonly maxEntries?: number;
  readonly maxBytes?: number;
}

/** A number is a count of balances, as before bytes could bound the cache. */
export function createBalanceStateCache(bounds: number | BalanceStateCacheBounds): BalanceStateCache {
  const { maxEntries, maxBytes } = typeof bounds === 'number' ? { maxEntries: bounds, maxBytes: undefined } : bounds;
  for (const [value, what] of [[maxEntries, 'capacity'], [maxBytes, 'byte budget']] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) throw new Error(`balance cache ${what} must be a positive integer`);
  }
  // Admitted by frequency once full: a pass over more balances than it holds (usage met in turn,
  // a backfill) would otherwise evict every state before its next use, so that nothing hits and
  // every load's state is promoted and collected (docs/benchmarks.md, 2026-12-02 midday). A state
  // not admitted is read again when next needed, like one evicted.
  const kept = new LruCache<string, string>({
    admission: 'frequency',
    ...(maxEntries !== undefined ? { maxEntries } : {}),
    ...(maxBytes !== undefined ? { maxBytes, weigh: estimatedCachedBalanceBytes } : {}),
  });
  const read = (balanceId: string, text: string | undefined) => (text === undefined ? undefined : fromCachedText(balanceId, text));
  return {
    get: (balanceId) => read(balanceId, kept.get(balanceId)),
    peek: (balanceId) => read(balanceId, kept.peek(balanceId)),
    // The text is made only for a state the cache may keep: at 100,000 customers most cold
    // loads' states are refused by the admission, and making their texts was the consumer's
    // costliest function of its own (docs/benchmarks.md, 2026-12-03). A no for the lightest
    // text is a no for this one (LruCache#wouldKeep); a yes is set's to confirm.
    set: (balanceId, balance) => {
      if (kept.wouldKeep(balanceId)) kept.set(balanceId, cachedText(balance));
    },
    delete: (balanceId) => kept.delete(balanceId),
    get size() {
      return kept.size;
    },
  };
}

/*
 * Each state is kept as one string, not as the objects `evolve` made: a JSON array of its fields
 * by position (the balance id is the key; amounts and the revision as integer strings, never
 * numbers). An open balance is a dozen heap objects (the records, a bigint per amount, a string
 * per id), which every full collection of the old space marks again; one string is one object,
 * and a third of the bytes, so the same budget holds about twice the balances and the collector
 * has a fraction of the work (docs/benchmarks.md, 2026-12-02 evening). A `get` makes the objects
 * again (one JSON.parse), short-lived garbage the young generation takes. The text never leaves
 * the process, so it carries no version: the stored snapshots' form is balanceStateStore.ts's.
 */
const HOLD_FIELDS = 4;
const OPEN_FIELDS = 10;

/**
 * The state's text: revision, then for an open balance its fields, then per open hold id,
 * credits, expiry and reference. Joined by Array#join, which makes one flat string: what
 * JSON.stringify returns is a tree of concatenated parts, and the heap keeps it as that tree,
 * a few more objects and twice the bytes (a heap snapshot at 100,000 customers held 227,000).
 * Free text goes through JSON.stringify (quotes, escapes); integers cannot need escaping.
 */
export function cachedText({ state, revision }: FoldedBalance): string {
  if (state.status !== 'open') return ['["', revision.toString(), '"]'].join('');
  const parts = [
    `["${revision}"`,
    JSON.stringify(state.customerId),
    JSON.stringify(state.productId),
    JSON.stringify(state.name),
    state.lowBalanceThreshold === null ? 'null' : `"${state.lowBalanceThreshold}"`,
    `"${state.balance}"`,
    `"${state.held}"`,
    `"${state.overdraftLimit}"`,
    state.warned ? '1' : '0',
    JSON.stringify(state.updatedAt),
  ];
  for (const [holdId, hold] of Object.entries(state.holds)) {
    parts.push(JSON.stringify(holdId), `"${hold.credits}"`, JSON.stringify(hold.expiresAt), hold.reference === null ? 'null' : JSON.stringify(hold.reference));
  }
  // The closing bracket goes onto the last field (as a part of its own it would follow a comma).
  parts[parts.length - 1] += ']';
  return parts.join(',');
}

/** What cachedText kept, made into the state again, with the objects in evolve's shape. */
export function fromCachedText(balanceId: string, text: string): FoldedBalance {
  const fields = JSON.parse(text) as (string | number | null)[];
  const revision = BigInt(fields[0] as string);
  if (fields.length === 1) return { state: initialBalanceState, revision };
  const holds: [string, OpenHold][] = [];
  for (let at = OPEN_FIELDS; at < fields.length; at += HOLD_FIELDS) {
    holds.push([fields[at] as string, { credits: BigInt(fields[at + 1] as string), expiresAt: fields[at + 2] as string, reference: fields[at + 3] as string | null }]);
  }
  const threshold = fields[4] as string | null;
  const state: OpenBalance = {
    status: 'open',
    balanceId,
    customerId: fields[1] as string,
    productId: fields[2] as string,
    name: fields[3] as string,
    lowBalanceThreshold: threshold === null ? null : BigInt(threshold),
    balance: BigInt(fields[5] as string),
    held: BigInt(fields[6] as string),
    // fromEntries, not assignment: every hold id stays an own property, `__proto__` included.
    holds: holds.length === 0 ? {} : Object.fromEntries(holds),
    overdraftLimit: BigInt(fields[7] as string),
    warned: fields[8] === 1,
    updatedAt: fields[9] as string,
  };
  return { state, revision };
}
