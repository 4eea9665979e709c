/**
 * What the projection keeps per credit balance, as readers get it: plain strings and
 * booleans, so it goes to JSON as is. Amounts are decimal strings (`formatCredits`);
 * revision and position are decimal strings because they are bigint counters.
 */
export interface BalanceSnapshot {
  readonly balanceId: string;
  readonly customerId: string;
  readonly productId: string;
  readonly name: string;
  /** Settled credits. */
  readonly balance: string;
  /** Σ credits of the open holds. */
  readonly held: string;
  /** balance − held: what holds and entitlement checks may spend, down to −overdraftLimit. */
  readonly available: string;
  readonly overdraftLimit: string;
  /**
   * The open holds, JSON `{ holdId: { credits, expiresAt, reference } }`: the fold needs them to
   * free the right amount when a later batch captures, releases or expires one.
   */
  readonly holds: string;
  readonly lowBalanceThreshold: string | null;
  readonly belowThreshold: boolean;
  /** Stream revision of the last event folded in. */
  readonly revision: string;
  /** Global position of the last event folded in: the snapshot reflects every event of the balance up to it. */
  readonly position: string;
  /** When the balance, its name or its threshold last changed (the event's occurredAt). */
  readonly updatedAt: string;
}

/** The hash fields, in the order the write script receives their values. */
export const SNAPSHOT_FIELDS = [
  'balanceId',
  'customerId',
  'productId',
  'name',
  'balance',
  'held',
  'available',
  'overdraftLimit',
  'holds',
  'lowBalanceThreshold',
  'belowThreshold',
  'revision',
  'position',
  'updatedAt',
] as const;

export type SnapshotField = (typeof SNAPSHOT_FIELDS)[number];
type SnapshotHash = Record<SnapshotField, string>;

export function snapshotToHash(snapshot: BalanceSnapshot): SnapshotHash {
  return {
    balanceId: snapshot.balanceId,
    customerId: snapshot.customerId,
    productId: snapshot.productId,
    name: snapshot.name,
    balance: snapshot.balance,
    held: snapshot.held,
    available: snapshot.available,
    overdraftLimit: snapshot.overdraftLimit,
    holds: snapshot.holds,
    // A hash holds strings only: '' stands for "no threshold".
    lowBalanceThreshold: snapshot.lowBalanceThreshold ?? '',
    belowThreshold: snapshot.belowThreshold ? '1' : '0',
    revision: snapshot.revision,
    position: snapshot.position,
    updatedAt: snapshot.updatedAt,
  };
}

/**
 * undefined for a missing (empty) hash or one that lacks a field, e.g. a half-deleted key, or one
 * written before holds (no `held`): readers fall back to the event store and the projector folds
 * such a balance again from its stream.
 */
export function snapshotFromHash(hash: Readonly<Record<string, string>>): BalanceSnapshot | undefined {
  if (SNAPSHOT_FIELDS.some((field) => hash[field] === undefined)) return undefined;
  const fields = hash as SnapshotHash;
  return {
    balanceId: fields.balanceId,
    customerId: fields.customerId,
    productId: fields.productId,
    name: fields.name,
    balance: fields.balance,
    held: fields.held,
    available: fields.available,
    overdraftLimit: fields.overdraftLimit,
    holds: fields.holds,
    lowBalanceThreshold: fields.lowBalanceThreshold === '' ? null : fields.lowBalanceThreshold,
    belowThreshold: fields.belowThreshold === '1',
    revision: fields.revision,
    position: fields.position,
    updatedAt: fields.updatedAt,
  };
}

/** HGETALL through EVAL comes back as a flat [field, value, ...] array. */
export function hashFromFlatArray(flat: readonly string[]): Record<string, string> {
  const hash: Record<string, string> = {};
  for (let index = 0; index + 1 < flat.length; index += 2) hash[flat[index]!] = flat[index + 1]!;
  return hash;
}
