import { TallyError } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { leaseHolders, tryAcquireAdvisoryLease } from '@tally/postgres';
import { createPostgresCheckpointStore, rewindCheckpoint } from '@tally/runtime';
import type { Pool } from 'pg';

/** A relay holds the lease of the checkpoint: it would save over the rewind (or publish past it). */
export class LedgerRelayPublishingError extends TallyError {
  readonly code = 'ledger_relay_publishing';
  readonly retriable = false;
}

/** The target is not behind the checkpoint: a rewind only moves it back; the relay moves it forward. */
export class RewindNotBackwardError extends TallyError {
  readonly code = 'rewind_not_backward';
  readonly retriable = false;
}

/** The checkpoint and lease of the relay that publishes to `topic`, as the main job names them. */
export const ledgerRelayCheckpointName = (topic: string) => `ledger-relay:${topic}`;

export interface RewindLedgerRelayOptions {
  readonly pool: Pool;
  readonly eventStore: Pick<EventStore, 'readAll' | 'headPosition'>;
  /** The relay's checkpoint, and its lease's name: `ledger-relay:<topic>` in the main job. */
  readonly checkpointName: string;
  /**
   * Where publishing starts again: after this global position (the checkpoint's own meaning), or
   * with the first event recorded at or after this time.
   */
  readonly to: { readonly position: bigint } | { readonly time: Date };
  /** Say what would be done and change nothing. */
  readonly dryRun?: boolean;
}

export interface LedgerRelayRewind {
  /** The checkpoint before. */
  readonly previous: bigint;
  /** The checkpoint after (the same in a dry run's answer, as it would be). */
  readonly position: bigint;
  /** The first event the relay publishes again; null when no event follows the position. */
  readonly firstEvent: { readonly position: bigint; readonly recordedAt: Date } | null;
  /** The event store's head: the relay publishes again up to about here before it is back where it was. */
  readonly head: bigint;
  readonly dryRun: boolean;
}

/** The first event after a position (exclusive), or undefined past the end. */
type FirstAfter = (position: bigint) => Promise<{ readonly position: bigint; readonly recordedAt: Date } | undefined>;

/**
 * The position of the last event recorded before `time`, or 0n (before the first event) when
 * none was: a binary search over positions, one read of one event per probe, since events are
 * recorded in position order (the PostgreSQL store stamps each commit under its commit-order
 * lock; EventStoreDB in its log's order). Positions need not be dense.
 */
export async function lastPositionBefore(time: Date, head: bigint, firstAfter: FirstAfter): Promise<bigint> {
  const at = time.getTime();
  // Every event below `low` was recorded before the time; none of those at or after `high` was.
  // A checkpoint of 0 is before the first event, so no event is at position 0.
  let low = 1n;
  let high = head + 1n;
  let before = 0n;
  while (low < high) {
    const middle = low + (high - low) / 2n;
    const found = await firstAfter(middle - 1n);
    if (found !== undefined && found.recordedAt.getTime() < at) {
      before = found.position;
      low = found.position + 1n;
    } else {
      high = middle;
    }
  }
  return before;
}

/**
 * Moves the ledger relay's checkpoint back, so the relay publishes that stretch of the ledger
 * again when it next starts (a billing consumer that lost what it had read, a topic whose
 * retention dropped it). It takes the relay's lease for the moment of the write, so no relay can
 * save over it, and is refused while a relay holds it: stop every process with the relay role
 * first (a standby would take the lease the moment the publisher stopped), and let them exit: a
 * relay deposed without exiting may still save its last batch's checkpoint (checkpointedProcessor
 * retries a save for a moment after a stop), which moves it forward over this. What is published
 * again reaches consumers twice, and they drop it by event id, as any redelivery (docs/ledger.md).
 */
export async function rewindLedgerRelay(options: RewindLedgerRelayOptions): Promise<LedgerRelayRewind> {
  const { pool, eventStore, checkpointName } = options;
  const lease = await tryAcquireAdvisoryLease({ pool, name: checkpointName });
  if (lease === undefined) {
    const holders = await leaseHolders(pool, [checkpointName]);
    throw new LedgerRelayPublishingError(
      `a ledger relay holds ${checkpointName} (PostgreSQL backend ${holders.join(', ') || 'unknown'}): stop every process with the relay role, then rewind`,
    );
  }
  try {
    const head = await eventStore.headPosition();
    const firstAfter: FirstAfter = async (position) => {
      const [event] = await eventStore.readAll({ after: position, maxCount: 1 });
      return event === undefined ? undefined : { position: event.position, recordedAt: event.recordedAt };
    };
    const position = 'position' in options.to ? options.to.position : await lastPositionBefore(options.to.time, head, firstAfter);
    const previous = await rewindCheckpointOrSay(pool, checkpointName, position, options.dryRun === true);
    return { previous, position, firstEvent: (await firstAfter(position)) ?? null, head, dryRun: options.dryRun === true };
  } finally {
    await lease.release();
  }
}

async function rewindCheckpointOrSay(pool: Pool, name: string, position: bigint, dryRun: boolean): Promise<bigint> {
  const current = await createPostgresCheckpointStore(pool).load(name);
  if (position >= current) {
    throw new RewindNotBackwardError(`the checkpoint ${name} is at ${current}; a rewind only moves it back (to ${position} it would not), and the relay moves it forward`);
  }
  return dryRun ? current : rewindCheckpoint(pool, name, position);
}
