import { leaseHolderSessions, type LeaseHolderSession } from '@tally/postgres';
import type { Pool } from 'pg';
import { readCheckpoints } from './checkpointStore';

/** A checkpointed processor as an operator looks at it, whichever process runs it. */
export interface ProcessorStatus {
  /** The checkpoint's name, and its lease's (e.g. `ledger-relay:credit-ledger`). */
  readonly name: string;
  readonly position: bigint;
  /** Positions between the checkpoint and the event store's head: an upper bound of the events it has still to handle. */
  readonly behind: bigint;
  /** When it last saved its checkpoint. */
  readonly savedAt: Date;
  /** The session holding its lease; null when no process runs it (or the lease is free between two holders). */
  readonly leader: Omit<LeaseHolderSession, 'name'> | null;
}

/**
 * Every processor that has saved a checkpoint, in the pool's schema: its position, how far behind
 * the head it stands and which session leads it. Read from PostgreSQL, so any process answers for
 * all of them (`tally processors`, GET /v1/processors).
 */
export async function readProcessorStatus(pool: Pool, eventStore: { headPosition(): Promise<bigint> }): Promise<{ readonly head: bigint; readonly processors: readonly ProcessorStatus[] }> {
  const [checkpoints, head] = await Promise.all([readCheckpoints(pool), eventStore.headPosition()]);
  const leaders = new Map((await leaseHolderSessions(pool, checkpoints.map(({ name }) => name))).map(({ name, ...session }) => [name, session]));
  return {
    head,
    processors: checkpoints.map(({ name, position, updatedAt }) => ({
      name,
      position,
      behind: head > position ? head - position : 0n,
      savedAt: updatedAt,
      leader: leaders.get(name) ?? null,
    })),
  };
}
