import { TallyError } from '@tally/domain';
import { isTransientPgError, leaseHolderSessions, type LeaseHolderSession } from '@tally/postgres';
import type { Pool } from 'pg';
import { readCheckpoints } from './checkpointStore';
import { guardTransient } from './guardTransient';

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

/** PostgreSQL did not answer the status read (refused, restarting, timed out): the same read can succeed later. */
export class ProcessorStatusUnavailableError extends TallyError {
  readonly code = 'processors_unavailable';
  readonly retriable = true;
}

/**
 * Only PostgreSQL's transient failures are an outage (503 with Retry-After from the API, the typed
 * message from `tally processors`); a missing table or column after a bad migration, or a bug,
 * passes through unchanged to be answered 500 and logged. The event store's head read throws its
 * own typed errors, which pass through as they are.
 */
const guardStatusRead = guardTransient(
  isTransientPgError,
  (cause) => new ProcessorStatusUnavailableError('the processor status is unavailable: PostgreSQL did not answer', { cause }),
);

/**
 * Every processor that has saved a checkpoint, in the pool's schema: its position, how far behind
 * the head it stands and which session leads it. Read from PostgreSQL, so any process answers for
 * all of them (`tally processors`, GET /v1/processors).
 */
export function readProcessorStatus(pool: Pool, eventStore: { headPosition(): Promise<bigint> }): Promise<{ readonly head: bigint; readonly processors: readonly ProcessorStatus[] }> {
  return guardStatusRead(async () => {
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
  });
}

/**
 * The processor status on the wire, decimal strings for positions: what GET /v1/processors
 * answers and `tally processors --json` prints, written once for both.
 */
export interface ProcessorStatusView {
  readonly head: string;
  readonly items: Array<{
    readonly name: string;
    readonly position: string;
    readonly behind: string;
    readonly savedAt: string;
    readonly leader: { readonly pid: number; readonly applicationName: string } | null;
  }>;
}

export function processorStatusView({ head, processors }: { readonly head: bigint; readonly processors: readonly ProcessorStatus[] }): ProcessorStatusView {
  return {
    head: head.toString(),
    items: processors.map(({ name, position, behind, savedAt, leader }) => ({
      name,
      position: position.toString(),
      behind: behind.toString(),
      savedAt: savedAt.toISOString(),
      leader: leader === null ? null : { pid: leader.pid, applicationName: leader.applicationName },
    })),
  };
}
