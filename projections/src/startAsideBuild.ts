import { TallyError } from '@tally/domain';
import { createPeriodicWorker } from '@tally/runtime';
import type { Logger } from 'pino';
import type { GenerationStore } from './generationStore';

/** How often a replay or verify says it is still building its aside generation. */
export const ASIDE_BEAT_INTERVAL_MS = 5_000;

/**
 * A builder silent this long is gone (SIGKILL, OOM, a lost host): twelve beats missed, far past
 * any pause of a live one (each Redis command is bounded, 5 s by default).
 */
export const ASIDE_ABANDONED_AFTER_MS = 60_000;

/**
 * A rebuild failed or was stopped, and the generation it was building could not be deleted (or
 * Redis could not say whether it serves). `cause` is why the rebuild stopped, if it did.
 */
export class AsideGenerationLeftError extends TallyError {
  readonly code = 'aside_generation_left';
  readonly retriable = false;
  constructor(
    readonly generation: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface AsideBuild {
  readonly generation: string;
  /** The generation serves now (the switch dropped its building record): stops the heartbeat. */
  served(): Promise<void>;
  /** Done with the generation without error (a verify's, or one that vanished): deletes it; an AsideGenerationLeftError when that fails. */
  discard(): Promise<void>;
  /**
   * The build stopped with `error` before it could be known to serve: deletes the generation
   * unless it serves (asked, never assumed: a switch whose answer was lost). Answers what to throw:
   * `error` when nothing is left, else an AsideGenerationLeftError saying what is and why.
   */
  abandon(error: unknown): Promise<unknown>;
}

/**
 * Starts building an aside generation: first deletes those whose builder stopped beating (a
 * killed replay or verify never ran its cleanup, and with `noeviction` their copies of the
 * snapshots would at length make Redis refuse the projector's writes), then creates one and beats
 * for it until it serves or is deleted.
 */
export async function startAsideBuild(store: GenerationStore, logger: Logger): Promise<AsideBuild> {
  const abandoned = await store.deleteAbandonedAsides(ASIDE_ABANDONED_AFTER_MS);
  if (abandoned.length > 0) {
    logger.warn({ generations: abandoned }, 'deleted generations a replay or verify was building when it was killed (no heartbeat for a minute)');
  }
  const generation = await store.createAside();
  const heartbeat = createPeriodicWorker({
    name: 'aside-heartbeat',
    logger,
    intervalMs: ASIDE_BEAT_INTERVAL_MS,
    runAtStart: false,
    abandonOnStop: true,
    run: () => store.beatAside(generation),
  });
  await heartbeat.start();
  /** `error`: why the build stopped, if it did (its message leads, and it is the cause). */
  const leftBehind = (why: string, error?: unknown) => {
    const stopped = error === undefined ? '' : `${error instanceof Error ? error.message : String(error)}; `;
    return new AsideGenerationLeftError(
      generation,
      `${stopped}the generation being built, ${generation}, ${why}: the next replay or verify deletes it (by hand: ${store.keys.deleteByHand(generation)})`,
      error === undefined ? undefined : { cause: error },
    );
  };
  return {
    generation,
    served: () => heartbeat.stop(),
    async discard() {
      await heartbeat.stop();
      try {
        await store.deleteGeneration(generation);
      } catch (cleanup) {
        throw leftBehind(`could not be deleted (${(cleanup as Error).message})`);
      }
    },
    async abandon(error) {
      await heartbeat.stop();
      let serving: string | undefined;
      try {
        serving = (await store.readActive())?.generation;
      } catch (unknown) {
        logger.warn({ err: unknown, generation }, 'could not tell whether the generation being built serves; kept');
        return leftBehind(`was kept, as Redis could not say whether it serves (${(unknown as Error).message})`, error);
      }
      if (serving === generation) return error;
      try {
        await store.deleteGeneration(generation);
        return error;
      } catch (cleanup) {
        logger.warn({ err: cleanup, generation }, 'could not delete the generation being built');
        return leftBehind(`could not be deleted (${(cleanup as Error).message})`, error);
      }
    },
  };
}
