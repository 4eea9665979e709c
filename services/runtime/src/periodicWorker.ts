import type { Logger } from 'pino';
import { createWorker, type Worker } from './worker';

interface PeriodicWorkerOptions {
  readonly name: string;
  readonly logger: Logger;
  /** Pause between the end of one run and the start of the next. */
  readonly intervalMs: number;
  /** false: the first run comes intervalMs after start (an owner that loaded its state in its own start). Default true. */
  readonly runAtStart?: boolean;
  /**
   * true: stop() does not wait for the run in flight, whose outcome is then ignored. For runs
   * that only look or report (a lag, a heartbeat), against a dependency that may not answer
   * for a while: nothing they do needs finishing, and stopping must not wait on them.
   */
  readonly abandonOnStop?: boolean;
  /**
   * One run. Resolving to true runs the next one at once (work is left that a bound per run held
   * back). A rejection is logged and the next run comes after the interval: a run must be safe to
   * repeat. `signal` is aborted by stop(); stop() waits for the run in flight unless abandonOnStop.
   */
  run(signal: AbortSignal): Promise<boolean | void>;
}

/**
 * A worker that runs `run` at start (or `intervalMs` after, see runAtStart) and then again
 * `intervalMs` after each run ends: a timeout after each run rather than an interval, so runs
 * never overlap however slow one is. The one timer loop of every background role.
 */
export function createPeriodicWorker(options: PeriodicWorkerOptions): Worker {
  const { name, intervalMs } = options;
  if (!Number.isInteger(intervalMs) || intervalMs < 1) throw new RangeError(`intervalMs must be a positive integer; got ${intervalMs}`);
  const logger = options.logger.child({ worker: name });
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;

  const schedule = (signal: AbortSignal, ms: number): void => {
    if (!signal.aborted) timer = setTimeout(() => tick(signal), ms);
  };

  function tick(signal: AbortSignal): void {
    let again = false;
    inFlight = options
      .run(signal)
      .then((more) => {
        again = more === true;
      })
      .catch((error: unknown) => {
        if (!(options.abandonOnStop && signal.aborted)) logger.error({ err: error }, `${name} run failed; running again after the interval`);
      })
      .finally(() => {
        inFlight = undefined;
        schedule(signal, again ? 0 : intervalMs);
      });
  }

  return createWorker(name, {
    async start(signal) {
      if (options.runAtStart === false) schedule(signal, intervalMs);
      else tick(signal);
    },
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      if (!options.abandonOnStop) await inFlight;
    },
  });
}
