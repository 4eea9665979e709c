import { performance } from 'node:perf_hooks';
import { isTransientError, retry, type BackoffOptions } from '@tally/runtime';
import type { Logger } from 'pino';

/** Commits `{ partition, offset }` (the next offset to read) for one topic; kafkajs's payload.commitOffsetsIfNecessary. */
export type CommitOffsets = (offsets: { topics: { topic: string; partitions: { partition: number; offset: string }[] }[] }) => Promise<void>;

export interface OffsetCommitter {
  /**
   * Everything before `next` on `partition` is durable (appended, dead-lettered): commit it. While
   * open this returns at once and the commit follows off the caller's path; once closing it returns
   * after the commit (and throws its error), as an inline commit would.
   */
  done(partition: number, next: bigint, commit: CommitOffsets): Promise<void>;
  /** Waits until every offset handed over so far was committed, or dropped after a failure. */
  drain(): Promise<void>;
  /** From now on every `done` commits inline; resolves once what was pending is committed. */
  close(): Promise<void>;
  /** The group rebalanced: offsets not yet sent, or being retried, belong to the old assignment and are dropped. */
  forget(): void;
}

export interface OffsetCommitterOptions {
  readonly topic: string;
  readonly logger: Logger;
  /** Attempts for a transient commit failure before the offsets are left to the next commit. Default 5. */
  readonly attempts?: number;
  /** The retry's delays; default 50 ms doubling to 1 s. */
  readonly retryDelays?: Pick<BackoffOptions, 'initialDelayMs' | 'maxDelayMs'>;
}

/**
 * The consumer's offset commits, taken off the fetch cycle. kafkajs fetches again only once every
 * partition's eachBatch has returned, so a commit awaited inside a chunk (15 ms at p50 here) delayed
 * every partition's next chunk; here the chunks only hand their offsets over, and one commit at a
 * time sends every partition's latest offset together.
 *
 * What stays guaranteed:
 * - An offset is handed over only after its chunk's appends and dead letters are durable
 *   (usageConsumer's processChunk), so a committed offset never covers unwritten usage.
 * - Per partition the committed offset only moves forward within an assignment: pending offsets
 *   merge by maximum and one commit is in flight at a time.
 * - A commit that is dropped (a rebalance, which also ends a commit being retried, or a failure
 *   past the attempts) loses nothing: the partition's next owner, or this member after rejoining,
 *   reads from the last committed offset, and those usage events are found marked as metered and
 *   skipped (exactly once is the markers' guarantee, never the offsets').
 * - A graceful stop commits everything: close() before the consumer leaves its group.
 */
export function createOffsetCommitter(options: OffsetCommitterOptions): OffsetCommitter {
  const { topic } = options;
  const logger = options.logger.child({ module: 'offsetCommitter' });
  const attempts = options.attempts ?? 5;
  const retryDelays = options.retryDelays ?? { initialDelayMs: 50, maxDelayMs: 1000 };
  let pending = new Map<number, bigint>();
  let commitWith: CommitOffsets | undefined;
  let running: Promise<void> | undefined;
  let closed = false;
  /** Aborted by forget(): the commit being retried then belongs to the old assignment. */
  let assignment = new AbortController();

  const merge = (into: Map<number, bigint>, partition: number, next: bigint): void => {
    const before = into.get(partition);
    if (before === undefined || next > before) into.set(partition, next);
  };

  const send = async (offsets: Map<number, bigint>, commit: CommitOffsets): Promise<void> => {
    const started = performance.now();
    const partitions = [...offsets].map(([partition, next]) => ({ partition, offset: next.toString() }));
    await commit({ topics: [{ topic, partitions }] });
    logger.debug({ partitions, durationMs: Math.round((performance.now() - started) * 10) / 10 }, 'offsets committed');
  };

  async function run(): Promise<void> {
    while (pending.size > 0 && commitWith !== undefined) {
      const offsets = pending;
      pending = new Map();
      const { signal } = assignment;
      try {
        await retry(
          async (attempt) => {
            if (attempt > 1) {
              // Offsets handed over since the failed attempt are newer: send the latest of each partition.
              for (const [partition, next] of pending) merge(offsets, partition, next);
              pending = new Map();
            }
            await send(offsets, commitWith!);
          },
          // No retry once the group rebalanced: kafkajs would send these offsets under the new
          // generation, which the broker accepts, also for partitions another member now owns and
          // may have committed past (a commit backwards). The attempt in flight runs to its end.
          { what: 'committing offsets', logger, isTransient: isTransientError, maxAttempts: attempts, signal, ...retryDelays },
        );
      } catch (error) {
        // Dropped, not lost: see the guarantees above. A later chunk's commit covers these partitions.
        if (signal.aborted) logger.debug({ err: error, partitions: [...offsets.keys()] }, 'offset commit of the previous assignment dropped after a rebalance');
        else logger.warn({ err: error, partitions: [...offsets.keys()] }, 'offset commit dropped; the partitions are redelivered from their last commit if nothing commits past it');
      }
    }
  }

  const kick = (): Promise<void> => {
    running ??= run().finally(() => {
      running = undefined;
      // Handed over while the last send was finishing.
      if (pending.size > 0) void kick();
    });
    return running;
  };

  return {
    async done(partition, next, commit) {
      commitWith = commit;
      if (closed) {
        await running;
        await send(new Map([[partition, next]]), commit);
        return;
      }
      merge(pending, partition, next);
      void kick();
    },
    async drain() {
      while (running !== undefined || (pending.size > 0 && commitWith !== undefined)) await (running ?? kick());
    },
    async close() {
      closed = true;
      await this.drain();
    },
    forget() {
      pending = new Map();
      assignment.abort();
      assignment = new AbortController();
    },
  };
}
