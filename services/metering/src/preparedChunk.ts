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
  const { decoded, rejected, earlier } = prepared;
  const bound = decoded[count]?.message.offset;
  const kept = (item: { readonly index: number }) => item.index < count;
  const invalid = prepared.priced.invalid.filter(kept);
  const usages = prepared.usages.slice(0, count);
  const priced = { charges: prepared.priced.charges.filter(kept), skips: prepared.priced.skips.filter(kept), invalid };
  const invalidIndexes = new Set(invalid.map(({ index }) => index));
  return {
    decoded: decoded.slice(0, count),
    rejected: bound === undefined ? rejected : rejected.filter(({ message }) => BigInt(message.offset) < BigInt(bound)),
    usages,
    priced,
    invalid: invalidIndexes,
    earlier: earlier === undefined ? undefined : earlierRunsOf(earlier, earlierRunCandidates(usages, priced, invalidIndexes)),
  };
}

/**
 * What the read of earlier runs asks about a chunk's usage, each once: the markers of the usage
 * not invalid (dead-lettered, never metered), and the first event ids of its charges (stored
 * without a marker by a consumer from before markers). The one rule, for the consumer's read
 * and for preparedBefore's cut of what it found. Pure.
 */
export function earlierRunCandidates(
  usages: readonly UsageEvent[],
  priced: PricedUsageBatch,
  invalid: ReadonlySet<number>,
): { readonly markers: readonly string[]; readonly eventIds: readonly string[] } {
  const markers = new Set<string>();
  usages.forEach((usage, index) => {
    if (!invalid.has(index)) markers.add(meteredUsageMarker(usage.customerId, usage.id));
  });
  const eventIds = new Set<string>();
  for (const charge of priced.charges) if (!invalid.has(charge.index)) eventIds.add(charge.firstEventId);
  return { markers: [...markers], eventIds: [...eventIds] };
}

/** The part of earlier runs read for a chunk that its `candidates` (some of its usage) asked about. */
function earlierRunsOf(earlier: EarlierRuns, candidates: ReturnType<typeof earlierRunCandidates>): EarlierRuns {
  const markers = new Set(candidates.markers);
  const eventIds = new Set(candidates.eventIds);
  return {
    metered: new Set([...earlier.metered].filter((marker) => markers.has(marker))),
    storedCharges: earlier.storedCharges.filter((event) => eventIds.has(event.id)),
  };
}
