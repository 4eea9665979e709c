import type { Logger } from 'pino';
import { withDeadline } from './retry';

export type WorkerState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** A background role (consumer, projector, relay, scheduler, ...): started once, stopped once. */
export interface Worker {
  readonly name: string;
  /**
   * Resolves once the worker runs (or stands by); rejects when it cannot start, which leaves it
   * 'failed'. Resolves early when stop() is called meanwhile. A second call throws.
   */
  start(): Promise<void>;
  /** Ends the work in hand and releases what the worker holds; idempotent. Waits for a start in progress first. */
  stop(): Promise<void>;
  state(): WorkerState;
  /**
   * `listener` is told, once, when the worker fails while it runs: it stopped working by itself
   * and will not resume (a client that gave up), so its process should stop and exit non-zero
   * rather than go on looking well. stop() still releases it.
   */
  onFailure(listener: (error: unknown) => void): void;
}

export interface WorkerBody {
  /**
   * Brings the worker up. `signal` is aborted by stop(): a start that retries a dependency that is
   * down gives up then, so stop() never waits for it. `fail` is for later, once it runs: the work
   * stopped by itself for good (see Worker.onFailure); a call while stopping is ignored.
   */
  start(signal: AbortSignal, fail: (error: unknown) => void): Promise<void>;
  /** Called once, after start() settled (whether it succeeded or not). */
  stop(): Promise<void>;
}

/** Wraps a worker's start and stop in the one lifecycle: the state, the order and a stop that never runs twice. */
export function createWorker(name: string, body: WorkerBody): Worker {
  let state: WorkerState = 'idle';
  const abort = new AbortController();
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  const listeners: Array<(error: unknown) => void> = [];
  let failure: { readonly error: unknown } | undefined;
  const fail = (error: unknown): void => {
    if (state !== 'running' && state !== 'starting') return;
    state = 'failed';
    failure = { error };
    for (const listener of listeners) listener(error);
  };
  return {
    name,
    state: () => state,
    onFailure(listener) {
      listeners.push(listener);
      // Told late, told still.
      if (failure !== undefined) listener(failure.error);
    },
    async start() {
      if (state !== 'idle') throw new Error(`${name} was already started`);
      state = 'starting';
      starting = body.start(abort.signal, fail);
      try {
        await starting;
        if (state === 'starting') state = 'running';
      } catch (error) {
        if (state === 'starting') state = 'failed';
        throw error;
      }
    },
    stop() {
      stopping ??= (async () => {
        if (state === 'idle') {
          state = 'stopped';
          return;
        }
        state = 'stopping';
        abort.abort(new Error(`${name} is stopping`));
        // A start cut short by the abort has nothing more to report; its failure was the caller's.
        await starting?.catch(() => undefined);
        try {
          await body.stop();
        } finally {
          state = 'stopped';
        }
      })();
      return stopping;
    },
  };
}

interface WorkerGroupOptions {
  readonly logger: Logger;
  /** Bound on the whole of stop(); what is still stopping then is abandoned. */
  readonly stopTimeoutMs: number;
  /** A started worker failed while running (Worker.onFailure), logged here already: the caller stops the group and exits non-zero. */
  readonly onFailure?: (name: string, error: unknown) => void;
}

/** `failed`: the parts whose stop threw (logged), the rest stopped all the same; the process should not exit 0 then. */
type StopOutcome = { readonly completed: true; readonly failed: readonly string[] } | { readonly completed: false; readonly waitingFor: string };

/** How main.ts starts every role and stops them all: in reverse order, within one bound. */
interface WorkerGroup {
  /** Starts the worker; once started (or failed) it is stopped with the rest. */
  start(worker: Worker): Promise<void>;
  /** Something that is not a worker but must be closed in the same order (a pool, a client, a server). */
  add(name: string, stop: () => Promise<void> | void): void;
  /**
   * Stops everything in the reverse order of start/add. A part whose stop fails is logged, named
   * in the outcome, and the rest still stop. Resolves when all have, or after stopTimeoutMs naming the part still
   * stopping (a batch retrying a database that does not answer): the caller decides to exit.
   */
  stop(): Promise<StopOutcome>;
}

export function createWorkerGroup(options: WorkerGroupOptions): WorkerGroup {
  const { logger, stopTimeoutMs } = options;
  const parts: Array<{ name: string; stop: () => Promise<void> | void }> = [];
  let stopping: Promise<StopOutcome> | undefined;

  async function stopAll(): Promise<StopOutcome> {
    let current: string | undefined;
    const inOrder = (async (): Promise<StopOutcome> => {
      const failed: string[] = [];
      for (const { name, stop } of [...parts].reverse()) {
        current = name;
        try {
          await stop();
          logger.info({ component: name }, 'stopped');
        } catch (error) {
          failed.push(name);
          logger.error({ err: error, component: name }, 'failed to stop cleanly');
        }
      }
      return { completed: true, failed };
    })();
    // inOrder never rejects: only the deadline can, naming the part still stopping then.
    return withDeadline(inOrder, stopTimeoutMs, () => new Error('stop timed out')).catch(() => ({ completed: false, waitingFor: current ?? 'start-up' }));
  }

  return {
    async start(worker) {
      parts.push({ name: worker.name, stop: () => worker.stop() });
      worker.onFailure((error) => {
        logger.fatal({ err: error, component: worker.name }, 'failed while running and will not resume by itself');
        options.onFailure?.(worker.name, error);
      });
      await worker.start();
    },
    add(name, stop) {
      parts.push({ name, stop });
    },
    stop() {
      stopping ??= stopAll();
      return stopping;
    },
  };
}
