import { availableOf, formatCredits, isBelowThreshold, formatNullableCredits, OpenBalance, OpenHold, parseStoredCredits, type FoldedBalance } from '@tally/domain';
import type { BalanceSnapshot } from './balanceSnapshot';

/**
 * An open balance as the fold carries it from batch to batch, with the global position of the
 * last event folded in. Kept in this form between batches of a rebuild, so a batch does not
 * parse back the strings the previous one formatted.
 */
export interface PositionedBalance extends FoldedBalance<OpenBalance> {
  readonly position: bigint;
}

const DIGITS = /^(0|[1-9]\d*)$/;

/** undefined when a field does not parse: such a snapshot is rebuilt, never trusted. */
export function foldedFromSnapshot(snapshot: BalanceSnapshot): PositionedBalance | undefined {
  if (!DIGITS.test(snapshot.revision) || !DIGITS.test(snapshot.position)) return undefined;
  try {
    return {
      state: {
        status: 'open',
        balanceId: snapshot.balanceId,
        customerId: snapshot.customerId,
        productId: snapshot.productId,
        name: snapshot.name,
        balance: parseStoredCredits(snapshot.balance),
        held: parseStoredCredits(snapshot.held),
        holds: holdsFromJson(snapshot.holds),
        overdraftLimit: parseStoredCredits(snapshot.overdraftLimit),
        lowBalanceThreshold: snapshot.lowBalanceThreshold === null ? null : parseStoredCredits(snapshot.lowBalanceThreshold),
        // `warned` only gates the warnings `decide` emits; a projection never decides, and no
        // snapshot field depends on it, so it need not be stored.
        warned: snapshot.belowThreshold,
        updatedAt: snapshot.updatedAt,
      },
      revision: BigInt(snapshot.revision),
      position: BigInt(snapshot.position),
    };
  } catch {
    return undefined;
  }
}

function holdsToJson(holds: OpenBalance['holds']): string {
  return JSON.stringify(
    Object.fromEntries(
      Object.entries(holds).map(([holdId, hold]) => [holdId, { credits: formatCredits(hold.credits), expiresAt: hold.expiresAt, reference: hold.reference }]),
    ),
  );
}

/** Throws on anything holdsToJson did not write: the caller then rebuilds the snapshot. */
function holdsFromJson(json: string): OpenBalance['holds'] {
  const parsed: unknown = JSON.parse(json);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('holds is not an object');
  return Object.fromEntries(
    Object.entries(parsed as Record<string, { credits?: unknown; expiresAt?: unknown; reference?: unknown }>).map(([holdId, hold]): [string, OpenHold] => {
      if (typeof hold.credits !== 'string' || typeof hold.expiresAt !== 'string' || (hold.reference !== null && typeof hold.reference !== 'string')) {
        throw new Error(`hold ${holdId} is malformed`);
      }
      return [holdId, { credits: parseStoredCredits(hold.credits), expiresAt: hold.expiresAt, reference: hold.reference }];
    }),
  );
}

export function snapshotOf({ state, revision, position }: PositionedBalance): BalanceSnapshot {
  return {
    balanceId: state.balanceId,
    customerId: state.customerId,
    productId: state.productId,
    name: state.name,
    balance: formatCredits(state.balance),
    held: formatCredits(state.held),
    available: formatCredits(availableOf(state)),
    overdraftLimit: formatCredits(state.overdraftLimit),
    holds: holdsToJson(state.holds),
    lowBalanceThreshold: formatNullableCredits(state.lowBalanceThreshold),
    belowThreshold: isBelowThreshold(state),
    revision: revision.toString(),
    position: position.toString(),
    updatedAt: state.updatedAt,
  };
}
