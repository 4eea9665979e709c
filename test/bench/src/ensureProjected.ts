import { createBalanceReadModel, replayBalances } from '@tally/projections';
import type { BenchRun } from './benchRun';
import { progress } from './progress';

/**
 * Freshness and lookups need snapshots of every balance under the run's key prefix. The replay
 * measurement leaves exactly that; when it did not run (or the ledger moved on since), an untimed
 * replay makes it.
 */
export async function ensureProjected(run: BenchRun): Promise<void> {
  const checkpoint = (await createBalanceReadModel({ redis: run.redis, keyPrefix: run.keyPrefix }).servedCheckpoint()) ?? 0n;
  const head = await run.eventStore.headPosition();
  if (checkpoint >= head) return;
  progress(`projecting the ledger into Redis first (untimed): checkpoint ${checkpoint}, head ${head}`);
  await replayBalances({ eventStore: run.eventStore, redis: run.redis, keyPrefix: run.keyPrefix, logger: run.logger });
}
