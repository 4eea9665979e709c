import { setTimeout as delay } from 'node:timers/promises';

export interface Progress {
  readonly done: boolean;
  /** Anything that changes while work moves on (a count, a sum of offsets). */
  readonly mark: string;
  /** What to say when it stalls. */
  readonly detail: string;
}

/**
 * Polls until `check` says done, for as long as it keeps moving: a backlog may take minutes, but
 * a mark that has not changed for `stallMs` will not finish, and the scenario should report that
 * now rather than at a distant deadline. Rejects with the stall (or the deadline) and the detail.
 */
export async function waitWhileProgressing(
  description: string,
  check: () => Promise<Progress>,
  { stallMs = 60_000, deadlineMs = 600_000, intervalMs = 250 }: { stallMs?: number; deadlineMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let mark: string | undefined;
  let movedAt = Date.now();
  let detail = 'no answer yet';
  for (;;) {
    try {
      const progress = await check();
      if (progress.done) return;
      detail = progress.detail;
      if (progress.mark !== mark) [mark, movedAt] = [progress.mark, Date.now()];
    } catch (error) {
      // A service that is down is not progress: the stall clock keeps running.
      detail = String(error);
    }
    if (Date.now() - movedAt > stallMs) throw new Error(`${description}: no progress for ${stallMs / 1000} s (${detail})`);
    if (Date.now() > deadline) throw new Error(`${description}: not done in ${deadlineMs / 1000} s (${detail})`);
    await delay(intervalMs);
  }
}
