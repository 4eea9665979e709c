import type { EventStore } from '@tally/event-store';
import { createBackoff } from '@tally/runtime';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  createGenerationStore,
  GenerationStore,
  NewerProjectionError,
  projectedFromAnotherStore,
  StoreBehindProjectionError,
  type SwitchOutcome,
} from './generationStore';
import { rebuildGeneration } from './rebuildGeneration';
import { createProgressTracker, RebuildProgress } from './rebuildProgress';
import { resolveBatchSize } from './resolveBatchSize';
import { createSnapshotCache } from './snapshotCache';
import { startAsideBuild } from './startAsideBuild';

export interface ReplayOptions {
  readonly eventStore: EventStore;
  readonly redis: Redis;
  readonly keyPrefix?: string;
  readonly logger: Logger;
  readonly onProgress?: (progress: RebuildProgress) => void;
  /** Events per read, and snapshots per Redis script. Default 1000. */
  readonly batchSize?: number;
  /** Balances kept in memory between batches (about 600 bytes each); more are re-read from Redis. Default 50 000. */
  readonly snapshotCacheSize?: number;
  /** Stops the replay between pages (Ctrl-C); the generation it was building is deleted, the live one serves on. */
  readonly signal?: AbortSignal;
  /**
   * Replace a live generation whose checkpoint is above the event store's head (projected from
   * another store, or from this one before a restore). Without it the replay refuses with a
   * StoreBehindProjectionError: the store may be the wrong one.
   */
  readonly replaceAheadProjection?: boolean;
}

export interface ReplayResult {
  /** The generation now serving. */
  readonly generation: string;
  /** The generation it replaced (now deleted), if there was one. */
  readonly previous: string | undefined;
  /** Events folded. */
  readonly events: number;
  readonly seconds: number;
  readonly deletedKeys: number;
  /** The replaced generation when deleting it failed (logged with how to delete it by hand): garbage that serves no one. */
  readonly undeleted: string | undefined;
}

/** Keys flushed under a replay again and again means something keeps wiping Redis: stop. */
const MAX_REBUILDS = 3;

/** Between reads after the live projector got past the rebuild: it moves on meanwhile, so do not race it read for read. */
const BEHIND_BACKOFF = { initialDelayMs: 100, maxDelayMs: 2000 };

/**
 * The live generation, and with it the event store's head, read in that order as the projector
 * reads them: a live projector of this store that projects an event appended between the two
 * reads then stays at or below the head read, whereas read the other way round it would look
 * projected from another store, and a forced switch would take readers back in time. `ahead`: the
 * live generation and the head when it is above that head (projectedFromAnotherStore).
 */
async function readLiveAndHead(store: GenerationStore, eventStore: EventStore) {
  const live = await store.readActive();
  // No live generation: no store can be behind it, and no head to wait for.
  if (live === undefined) return { live, ahead: undefined };
  const head = await eventStore.headPosition();
  return { live, ahead: projectedFromAnotherStore(head, live.checkpoint) ? { ...live, head } : undefined };
}

function storeBehind({ head, checkpoint }: { head: bigint; checkpoint: bigint }): StoreBehindProjectionError {
  return new StoreBehindProjectionError(
    `the event store's head is at position ${head}, below the live generation's checkpoint, ${checkpoint}: it was projected from another store (is this shell's database or schema the services'?), or from this one before a restore; replacing it must be asked for`,
  );
}

/**
 * Rebuilds every snapshot from position 0 into a fresh generation while the live one keeps
 * serving, then points readers at it in one script. If the live projector got past the
 * rebuild meanwhile, the rebuild reads on and tries again, so the switch never takes readers
 * back in time, unless the live generation is above the event store's head: it was projected
 * from another store (or this one before a restore), as the projector judges it too, and is
 * replaced if the caller said so (replaceAheadProjection), else refused, before the rebuild and
 * again at the switch. Events appended after the switch are the live projector's: it notices the
 * switch and continues from the new generation's checkpoint. The replaced generation is deleted afterwards.
 */
export async function replayBalances(options: ReplayOptions): Promise<ReplayResult> {
  const { eventStore } = options;
  const logger = options.logger.child({ module: 'replayBalances' });
  const store = createGenerationStore({ redis: options.redis, keyPrefix: options.keyPrefix });
  const batchSize = resolveBatchSize(options.batchSize, 1000);
  const backoff = createBackoff(BEHIND_BACKOFF);
  // Up front, rather than after a rebuild that may take an hour; asked again at the switch, as
  // the live generation (or the store) may move meanwhile.
  const atStart = await readLiveAndHead(store, eventStore);
  if (atStart.ahead !== undefined && options.replaceAheadProjection !== true) throw storeBehind(atStart.ahead);
  for (let rebuild = 1; rebuild <= MAX_REBUILDS; rebuild += 1) {
    const build = await startAsideBuild(store, logger);
    const { generation } = build;
    try {
      const cache = createSnapshotCache(options.snapshotCacheSize);
      const progress = createProgressTracker(await eventStore.headPosition(), options.onProgress);
      logger.info({ generation }, 'replaying every balance into a fresh generation');
      let position = 0n;
      let behind = 0;
      for (;;) {
        const rebuilt = await rebuildGeneration({
          eventStore,
          store,
          logger,
          generation,
          cache,
          batchSize,
          after: position,
          onBatch: progress.onBatch,
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
        });
        position = rebuilt.position;
        // Fresh as of the read that found the rebuild at the head: it held every event recorded before it.
        const fresh = rebuilt.atHeadAsOf !== undefined ? { freshAsOf: rebuilt.atHeadAsOf } : {};
        let switched: SwitchOutcome = rebuilt.outcome === 'ok' ? await store.switchActive(generation, fresh) : { kind: 'reset' as const };
        if (switched.kind === 'behind') {
          // Read after the live checkpoint was found above the rebuild's: a head below it is no lag
          // the rebuild can close by reading on (it would spin, reading nothing, for ever).
          const { ahead: live } = await readLiveAndHead(store, eventStore);
          if (live !== undefined) {
            // Deleted below, as any generation that never served.
            if (options.replaceAheadProjection !== true) throw storeBehind(live);
            logger.warn(
              { generation, live: live.generation, checkpoint: live.checkpoint.toString(), head: live.head.toString() },
              'the event store is behind the live generation (projected from another store, or from this one before a restore): replacing it',
            );
            switched = await store.switchActive(generation, { ...fresh, over: live.generation });
          }
        }
        if (switched.kind === 'behind') {
          behind += 1;
          logger.debug({ generation, position: position.toString(), behind }, 'the live generation got past the rebuild; reading on');
          await backoff.wait(behind, options.signal);
          continue;
        }
        if (switched.kind === 'reset') break;
        if (switched.kind === 'newer') {
          // Deleted below, as any generation that never served.
          throw new NewerProjectionError(`the live generation holds the fold of a newer release: run that release's replay, not this one's`);
        }
        await build.served();
        const { events, elapsedSeconds: seconds } = progress;
        logger.info({ generation, previous: switched.previous, events, seconds }, 'switched to the rebuilt generation');
        const { previous } = switched;
        let deletedKeys = 0;
        let undeleted: string | undefined;
        if (previous !== undefined) {
          try {
            deletedKeys = await store.deleteGeneration(previous);
          } catch (error) {
            // Readers are switched: the replay did its work, and failing it now would have it run
            // again for nothing. What is left serves no one; nothing else deletes it, so say how.
            undeleted = previous;
            logger.warn(
              { err: error, generation: previous },
              `switched to the rebuilt generation, but could not delete the one it replaced, which serves no one: delete its keys with ${store.keys.deleteByHand(previous)}`,
            );
          }
        }
        return { generation, previous, events, seconds, deletedKeys, undeleted };
      }
    } catch (error) {
      // Stopped or failed before the switch: a whole copy of the snapshots would stay in Redis.
      throw await build.abandon(error);
    }
    // Asked before the discard drops its record. A sweep deletes the checkpoint first and the
    // record last, so one still recorded is being swept; one no longer recorded was swept only if
    // the live generation is still the one found at the start (a flush takes that too).
    const swept =
      (await store.isBuilding(generation)) || (atStart.live !== undefined && (await store.readActive())?.generation === atStart.live.generation);
    if (swept) {
      logger.warn({ generation }, 'the generation being rebuilt is gone: another replay or verify swept it as stale (no heartbeat from this one for a minute: was this process or its Redis connection paused?); starting over');
    } else {
      logger.warn({ generation }, 'the rebuilt generation vanished (Redis flushed or restarted, or another replay or verify swept it as stale); starting over');
    }
    await build.discard();
  }
  throw new Error(`Redis lost the rebuilt generation ${MAX_REBUILDS} times in a row; is something flushing it?`);
}
