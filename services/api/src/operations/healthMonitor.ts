import type { FastifyBaseLogger } from 'fastify';

export type HealthCheck = () => Promise<Record<string, 'up' | 'down'>>;

export interface HealthState {
  readonly checks: Readonly<Record<string, 'up' | 'down'>>;
  readonly checkedAt: Date;
}

export interface HealthMonitor {
  /** The latest state; until the first check has finished, that check. */
  current(): Promise<HealthState>;
  stop(): void;
}

/**
 * Runs the dependency check in the background, one at a time: the next starts `intervalMs`
 * after the previous one has settled, even when it outlived its timeout (it is then reported
 * down at the timeout, but not run again while it still hangs). So no number of callers makes
 * more than one check in flight.
 */
export function createHealthMonitor(options: {
  check: HealthCheck;
  timeoutMs: number;
  intervalMs: number;
  logger: FastifyBaseLogger;
}): HealthMonitor {
  const { check, timeoutMs, intervalMs, logger } = options;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  function runOnce(): { state: Promise<HealthState>; settled: Promise<unknown> } {
    const running = Promise.resolve().then(check);
    let timeout: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => reject(new Error(`health check took longer than ${timeoutMs} ms`)), timeoutMs);
    });
    const state = Promise.race([running, expired])
      .catch((error: unknown): Record<string, 'up' | 'down'> => {
        logger.warn({ err: error }, 'health check failed');
        return { health: 'down' };
      })
      .then((checks) => ({ checks, checkedAt: new Date() }))
      .finally(() => clearTimeout(timeout));
    return { state, settled: Promise.allSettled([running, state]) };
  }

  const first = runOnce();
  let latest = first.state;
  const loop = (settled: Promise<unknown>) => {
    void settled.then(() => {
      if (stopped) return;
      timer = setTimeout(() => {
        const next = runOnce();
        // The previous state keeps being served until the new one is known.
        void next.state.then(() => {
          latest = next.state;
        });
        loop(next.settled);
      }, intervalMs);
      timer.unref();
    });
  };
  loop(first.settled);

  return {
    current: () => latest,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
