import type { TallyError, UsageEvent } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import { meteredUsageMarker } from '@tally/ledger';
import type { KafkaMessage } from 'kafkajs';
import type { PricedUsageBatch } from './priceUsageBatch';

export interface Decoded {
  readonly message: KafkaMessage;
  readonly usage: UsageEvent;
}

export interface Rejected {
  readonly message: KafkaMessage;
  readonly error: TallyError;
  /** Known when the bytes decoded but the event could not be priced. */
  readonly usage?: UsageEvent;
}

/**
 * What earlier runs metered of a chunk's usage, as of the read: its markers, and its charges
 * stored by id (charged before markers existed). Read ahead, it may predate the previous chunk's
 * append: it can only miss what was metered since (markers are never removed), and apply's
 * append, which records the markers in the same transaction, catches exactly that.
 */
export interface EarlierRuns {
  readonly metered: ReadonlySet<string>;
  readonly storedCharges: readonly RecordedEvent[];
}

/**
 * A chunk's stateless work, done without looking at any balance's state: decoded, its balances
 * found (registry), its products read (catalog), priced, and its earlier runs read (unless its
 * partition's chunks find none: see apply). It may be done while the chunk before is still being
 * appended (see eachBatch); the decisions are not.
 */
export interface Prepared {
  /** In offset order, as `rejected`; the indexes below are indexes in `decoded` (and `usages`). */
  readonly decoded: readonly Decoded[];
  readonly rejected: readonly Rejected[];
  readonly usages: readonly UsageEvent[];
  readonly priced: PricedUsageBatch;
  readonly invalid: ReadonlySet<number>;
  /** Undefined: not read; the append checks them (see apply). */
  readonly earlier: EarlierRuns | undefined;
}

/**
 * The stage of a chunk's messages before its `count`th decoded usage event (all of them when it
 * has fewer), taken from the chunk's own: exactly what preparing those messages from the same
 * reads gives, without reading again. Pricing is per usage event and its indexes count from the
 * chunk's start, so the first `count` keep theirs; earlier runs are facts about single markers
 * and event ids, so theirs are those of the messages kept. Pure.
 */
export function preparedBefore(prepared: Prepared, count: number): Prepared {
  const { decoded, rejected, priced, earlier } = prepared;
  const bound = decoded[count]?.message.offset;
  const kept = (item: { readonly index: number }) => item.index < count;
  const charges = priced.charges.filter(kept);
  const invalid = priced.invalid.filter(kept);
  const usages = prepared.usages.slice(0, count);
  const invalidIndexes = new Set(invalid.map(({ index }) => index));
  return {
    decoded: decoded.slice(0, count),
    rejected: bound === undefined ? rejected : rejected.filter(({ message }) => BigInt(message.offset) < BigInt(bound)),
    usages,
    priced: { charges, skips: priced.skips.filter(kept), invalid },
    invalid: invalidIndexes,
    earlier: earlier === undefined ? undefined : earlierRunsOf(earlier, usages, invalidIndexes, charges),
  };
}

/** The part of earlier runs read for a chunk that concerns some of its usage (readEarlierRuns's candidates). */
function earlierRunsOf(
  earlier: EarlierRuns,
  usages: readonly UsageEvent[],
  invalid: ReadonlySet<number>,
  charges: PricedUsageBatch['charges'],
): EarlierRuns {
  const metered = new Set<string>();
  usages.forEach((usage, index) => {
    const marker = meteredUsageMarker(usage.customerId, usage.id);
    if (!invalid.has(index) && earlier.metered.has(marker)) metered.add(marker);
  });
  const chargeIds = new Set(charges.map((charge) => charge.firstEventId));
  return { metered, storedCharges: earlier.storedCharges.filter((event) => chargeIds.has(event.id)) };
}
