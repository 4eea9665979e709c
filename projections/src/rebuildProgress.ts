/** What a replay or verify reports after every batch, for a progress bar. */
export interface RebuildProgress {
  /** Positions of the log folded so far. */
  readonly done: number;
  /** Head position to reach (raised when the head moves past it). */
  readonly total: number;
  /** Events folded per second since the start. */
  readonly ratePerSecond: number;
  /** Time left at the current rate; 0 when done, null before a rate is known. */
  readonly etaSeconds: number | null;
}

/**
 * Turns batch positions into progress. Positions are counted as numbers: a progress bar
 * needs no exactness beyond 2^53, the snapshots themselves keep positions as strings.
 */
export function createProgressTracker(head: bigint, onProgress?: (progress: RebuildProgress) => void) {
  const startedAt = Date.now();
  let total = Number(head);
  let events = 0;
  return {
    onBatch(position: bigint, batchEvents: number): void {
      events += batchEvents;
      const done = Number(position);
      total = Math.max(total, done);
      const elapsedSeconds = (Date.now() - startedAt) / 1000;
      const ratePerSecond = elapsedSeconds > 0 ? events / elapsedSeconds : 0;
      const etaSeconds = done >= total ? 0 : ratePerSecond > 0 ? (total - done) / ratePerSecond : null;
      onProgress?.({ done, total, ratePerSecond, etaSeconds });
    },
    get events(): number {
      return events;
    },
    get elapsedSeconds(): number {
      return (Date.now() - startedAt) / 1000;
    },
  };
}
