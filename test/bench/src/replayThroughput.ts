import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { withClient } from '@tally/postgres';
import { replayBalances } from '@tally/projections';
import { to as copyTo } from 'pg-copy-streams';
import type { Rate } from './appendCeiling';
import type { BenchRun } from './benchRun';
import { EVENT_LOG_COLUMNS } from './copyRows';
import { cpuProfiling, type CollectedProfile } from './cpuProfiles';
import { BENCH_RESULTS_DIR } from './meteringThroughput';
import { startCpuWindow } from './processCpuSeconds';
import { formatCount, progress } from './progress';

/**
 * CPU ms per 1,000 replayed events: less tied than the rate to what else the machine runs, so a before/after
 * pair compares these. Each is absent where /proc could not tell.
 */
export interface ReplayCpu {
  /** The bench process, which runs replayBalances (with --profile, the profiler's cost included). */
  readonly cpuMsPerThousand?: number;
  /** PostgreSQL, every process of it (the pages read), over the same time. */
  readonly postgresCpuMsPerThousand?: number;
  /** Redis (the snapshots written, the switch), over the same time. */
  readonly redisCpuMsPerThousand?: number;
}

export interface ReplayResult {
  /** replayBalances: every snapshot rebuilt from position 0 into a fresh generation. */
  readonly replay: Rate & ReplayCpu;
  /** A sequential read of the same events table, streamed out by COPY and discarded: the ceiling. */
  readonly sequentialRead: Rate & { readonly bytes: number };
  /** `--profile`: where the bench process spent its time during replayBalances (and only then). */
  readonly profile?: CollectedProfile;
}

/**
 * The replay runs inside the bench process, so `--profile` profiles it in-process through the
 * inspector, started just before replayBalances and stopped just after: the ledger load and the
 * sequential read stay out of it.
 */
async function profiled<T>(run: BenchRun, work: () => Promise<T>): Promise<{ value: T; profile?: CollectedProfile }> {
  if (!run.options.profile) return { value: await work() };
  const profiling = cpuProfiling(BENCH_RESULTS_DIR, run.id, 'replay');
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    const value = await work();
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(path.join(profiling.dir, 'replay.cpuprofile'), JSON.stringify(profile));
    return { value, profile: profiling.collect() };
  } finally {
    session.disconnect();
  }
}

/** Streams `COPY (...) TO STDOUT` and throws the bytes away, counting rows (one line each). */
async function readEventsTable(run: BenchRun): Promise<{ rows: number; bytes: number }> {
  let rows = 0;
  let bytes = 0;
  await withClient(run.pool, (client) =>
    pipeline(
      client.query(copyTo(`COPY (SELECT ${EVENT_LOG_COLUMNS} FROM event_log) TO STDOUT`)),
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          bytes += chunk.length;
          for (let index = chunk.indexOf(10); index >= 0; index = chunk.indexOf(10, index + 1)) rows += 1;
          done();
        },
      }),
    ),
  );
  return { rows, bytes };
}

export async function measureReplayThroughput(run: BenchRun): Promise<ReplayResult> {
  const head = await run.eventStore.headPosition();
  progress(`replay: rebuilding every snapshot from ${formatCount(Number(head))} positions of the ledger`);
  const cpu = startCpuWindow(['postgres', 'redis-server']);
  let started = performance.now();
  const { value: result, profile } = await profiled(run, () =>
    replayBalances({ eventStore: run.eventStore, redis: run.redis, keyPrefix: run.keyPrefix, logger: run.logger }),
  );
  const replaySeconds = (performance.now() - started) / 1000;
  const { events } = result;
  const postgresCpuMsPerThousand = cpu.commandMsPerThousand('postgres', events);
  const redisCpuMsPerThousand = cpu.commandMsPerThousand('redis-server', events);
  const replay = {
    events,
    seconds: replaySeconds,
    perSecond: events / replaySeconds,
    cpuMsPerThousand: cpu.selfMsPerThousand(events),
    ...(postgresCpuMsPerThousand !== undefined ? { postgresCpuMsPerThousand } : {}),
    ...(redisCpuMsPerThousand !== undefined ? { redisCpuMsPerThousand } : {}),
  };
  progress(`replayBalances: ${formatCount(replay.perSecond)} events/s; now a sequential read of the events table`);
  started = performance.now();
  const { rows, bytes } = await readEventsTable(run);
  const readSeconds = (performance.now() - started) / 1000;
  progress(`sequential read: ${formatCount(rows / readSeconds)} rows/s`);
  return { replay, sequentialRead: { events: rows, seconds: readSeconds, perSecond: rows / readSeconds, bytes }, ...(profile !== undefined ? { profile } : {}) };
}
