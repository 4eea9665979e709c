import { createPeriodicWorker, withDeadline } from '@tally/runtime';
import type { Logger } from 'pino';

export type HealthCheck = () => Promise<Record<string, 'up' | 'down'>>;

interface HealthState {
  readonly checks: Readonly<Record<string, 'up' | 'down'>>;
  readonly checkedAt: Date;
}

interface HealthMonitor {
  /** The latest state; until the first check has finished, that check. */
  current(): Promise<HealthState>;
  /** Resolves at once even while a check hangs: the check is abandoned, never run again. */
  stop(): Promise<void>;
}

/**
 * Runs the dependency check in the background, one at a time: the next starts `intervalMs`
 * after the previous one has settled, even when it outlived its timeout (it is then reported
 * down at the timeout, but not run again while it still hangs). So no number of callers makes
 * more than one check in flight.
 */
export function createHealthMonitor(options: { check: HealthCheck; timeoutMs: number; intervalMs: number; logger: Logger }): HealthMonitor {
  const { check, timeoutMs, intervalMs, logger } = options;
  let firstState: (state: Promise<HealthState>) => void = () => undefined;
  let latest = new Promise<HealthState>((resolve) => (firstState = resolve));

  async function runOnce(stop: AbortSignal): Promise<void> {
    const running = Promise.resolve().then(check);
    const state = withDeadline(running, timeoutMs, () => new Error(`health check took longer than ${timeoutMs} ms`))
      .catch((error: unknown): Record<string, 'up' | 'down'> => {
        logger.warn({ err: error }, 'health check failed');
        return { health: 'down' };
      })
      .then((checks) => ({ checks, checkedAt: new Date() }));
    firstState(state);
    // The previous state keeps being served until the new one is known.
    void state.then(() => (latest = state));
    // The next check waits for this one to settle, however long it hangs; a stop does not.
    let release = (): void => undefined;
    const stopped = new Promise<void>((resolve) => (release = resolve));
    stop.addEventListener('abort', release);
    try {
      await Promise.race([Promise.allSettled([running, state]), stopped]);
    } finally {
      stop.removeEventListener('abort', release);
    }
  }

  const worker = createPeriodicWorker({ name: 'health-monitor', logger, intervalMs, run: runOnce });
  void worker.start();
  return { current: () => latest, stop: () => worker.stop() };
}
