import { randomUUID } from 'node:crypto';
import type { ActingKey } from '@tally/domain';
import { TallyError, ValidationError } from '@tally/domain';
import type { KafkaConnection } from '@tally/kafka';
import { tryAcquireAdvisoryLease } from '@tally/postgres';
import { abandonable, createOutageLog, createPeriodicWorker } from '@tally/runtime';
import type { Redis } from 'ioredis';
import type { CompressionTypes } from 'kafkajs';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { guardDeadLetters, type DeadLetterLog } from './deadLetterLog';
import { redriveDeadLetters, type RedriveResult } from './redriveDeadLetters';

/** Another send-back is running (in this process or another): one at a time, or letters would go back twice as fast as needed. */
export class RedriveRunningError extends TallyError {
  readonly code = 'redrive_running';
  readonly retriable = false;
  constructor(readonly runningId: string | undefined) {
    super(runningId === undefined ? 'dead letters are being sent back already (from the console, the API or tally redrive); wait for that run to end' : `dead letters are being sent back already (run ${runningId}); wait for it to end`);
  }
}

export class RedriveNotFoundError extends TallyError {
  readonly code = 'redrive_not_found';
  readonly retriable = false;
}

/** A cancellation of a send-back that has already ended (or whose process died): nothing is left to stop. */
export class RedriveNotRunningError extends TallyError {
  readonly code = 'redrive_not_running';
  readonly retriable = false;
}

/**
 * `interrupted`: its process stopped (or lost its lease) before the end; `cancelled`: someone
 * stopped it. Either way what it sent stays sent, and running it again sends the rest (and again
 * what was sent, which charges nothing twice).
 */
export type RedriveStatus = 'running' | 'succeeded' | 'failed' | 'interrupted' | 'cancelled';

/** Where a send-back was started: the API (the console) or `tally redrive` in a shell. */
export type RedriveOrigin = 'api' | 'cli';

/** One send-back of dead letters, as it stands. */
export interface RedriveRun {
  readonly id: string;
  readonly status: RedriveStatus;
  /** `api` for runs recorded before the shell's were. */
  readonly via: RedriveOrigin;
  readonly errorCodes: readonly string[] | 'all';
  /** The letters picked, each `<partition>:<offset>` on the dead-letter topic; null when chosen by code. */
  readonly letters: readonly string[] | null;
  /** ISO-8601; only letters dead-lettered from then on. */
  readonly since: string | null;
  readonly dryRun: boolean;
  readonly requestedBy: ActingKey | null;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  /** The counts so far; final once the run is no longer running. */
  readonly result: RedriveResult;
  /** Why it failed or was interrupted. */
  readonly error: string | null;
  /** Who asked it to stop, and when: set while it is still `running` until its runner notices. */
  readonly cancelRequestedBy: ActingKey | null;
  readonly cancelRequestedAt: string | null;
}

export interface RedriveRequest {
  readonly errorCodes: readonly string[] | 'all';
  /** Only these letters, each `<partition>:<offset>` on the dead-letter topic. */
  readonly letters?: readonly string[];
  readonly since?: Date;
  readonly dryRun?: boolean;
  readonly requestedBy: ActingKey | null;
  /** Default `api`. */
  readonly via?: RedriveOrigin;
}

/** This process's send-backs since it started, for its metrics. */
export interface RedriveCounters {
  /** Letters sent to the usage topic (not counted in dry runs), by error code. */
  readonly sentBackByErrorCode: Readonly<Record<string, number>>;
  /** Runs that ended here, by how. */
  readonly endedByStatus: Readonly<Record<Exclude<RedriveStatus, 'running'>, number>>;
  /** 1 while this process runs one. */
  readonly running: 0 | 1;
}

export interface DeadLetterRedrives {
  /** Starts a run in the background and answers it as started; RedriveRunningError while another runs. */
  start(request: RedriveRequest): Promise<RedriveRun>;
  /**
   * Starts a run and answers it once it has ended, however it ended (`tally redrive`, which waits
   * for its run in the foreground). As start() refuses, it refuses.
   */
  runToEnd(request: RedriveRequest): Promise<RedriveRun>;
  /** RedriveNotFoundError for an id it does not keep. */
  get(id: string): Promise<RedriveRun>;
  /** Newest first. */
  list(limit: number): Promise<RedriveRun[]>;
  /**
   * Asks a running run to stop after the batch at hand, from any process: answered once this
   * process's own run has stopped (or after 2 s, still stopping), or as `running` with the
   * request recorded while another process's run notices it (within a second).
   * RedriveNotRunningError once it has ended.
   */
  cancel(id: string, requestedBy: ActingKey | null): Promise<RedriveRun>;
  /** Interrupts this process's run, if any, and waits for it to record how far it came. */
  stop(): Promise<void>;
  counters(): RedriveCounters;
}

export interface DeadLetterRedrivesOptions {
  readonly kafka: KafkaConnection;
  readonly dlqTopic: string;
  readonly usageTopic: string;
  readonly compression?: CompressionTypes;
  /** Where runs are recorded (the dead-letter log's Redis). */
  readonly redis: Redis;
  /** Told which letters each run sent back, for the list of dead letters to say so. */
  readonly deadLetters: Pick<DeadLetterLog, 'markSentBack'>;
  readonly keyPrefix: string;
  /** Holds the advisory lease that lets one run at a time across every API process. */
  readonly pool: Pool;
  readonly logger: Logger;
  readonly clock?: () => Date;
  /** How many runs are kept; older records are dropped as new ones start. Default 50. */
  readonly keep?: number;
  /** How often a running run's record is refreshed; a record not refreshed for 6 times this is interrupted. Default 5 s. */
  readonly heartbeatMs?: number;
  /** Passed to the read of the dead-letter topic; default 30 s. */
  readonly idleTimeoutMs?: number;
  /** How often a running run looks for a cancellation asked of another process. Default 1 s. */
  readonly cancelCheckMs?: number;
}

const EMPTY_RESULT: RedriveResult = { read: 0, republished: 0, republishedByErrorCode: {}, skipped: { not_selected: 0, raw_batch: 0, cut: 0, other_source: 0, too_large: 0 }, notFound: [], tooLarge: [] };
/** How long a cancellation waits for this process's own run to record that it stopped. */
const LOCAL_CANCEL_WAIT_MS = 2_000;
/** The advisory lease of a send-back, taken by the API's runs and by `tally redrive` alike. */
export const REDRIVE_LEASE_NAME = 'dead-letter-redrive';

/** As stored: the run plus when its runner last said it was alive. */
interface StoredRun extends Omit<RedriveRun, 'via' | 'letters' | 'cancelRequestedBy' | 'cancelRequestedAt' | 'result'> {
  /** Absent in runs recorded before the shell's were, all of them the API's. */
  readonly via?: RedriveOrigin;
  /** Absent in runs recorded before letters could be picked. */
  readonly letters?: readonly string[] | null;
  /** notFound is absent in runs recorded before picks not found were named; too_large and tooLarge before letters too large were skipped. */
  readonly result: Omit<RedriveResult, 'notFound' | 'tooLarge' | 'skipped'> & {
    readonly notFound?: readonly string[];
    readonly tooLarge?: readonly string[];
    readonly skipped: Omit<RedriveResult['skipped'], 'too_large'> & { readonly too_large?: number };
  };
  readonly aliveAt: number;
}

/**
 * Stored under a key of its own, not in the run's record: the runner rewrites its record after
 * each batch and would overwrite a request written into it meanwhile.
 */
interface CancelRequest {
  readonly by: ActingKey | null;
  readonly at: string;
}

/** The abort reason of a cancellation, told apart from a process stopping. */
class RedriveCancelled extends Error {}

/**
 * Sends dead letters back, from the API (the console's Dead letters page) in the background of
 * the process that was asked, or from `tally redrive` in a shell's foreground: `redriveDeadLetters`,
 * its progress recorded in Redis for every API process to answer, so the console lists and stops
 * the shell's runs as its own. One run at a time across the
 * deployment: a PostgreSQL advisory lease, which PostgreSQL releases itself if the process dies,
 * so a crashed run never blocks the next. Two runs at once would charge nothing twice (each ledger
 * event's id derives from the usage event's), but would send every letter twice for nothing.
 */
export function createDeadLetterRedrives(options: DeadLetterRedrivesOptions): DeadLetterRedrives {
  const logger = options.logger.child({ module: 'dead-letter-redrives' });
  const clock = options.clock ?? (() => new Date());
  const keep = options.keep ?? 50;
  const heartbeatMs = options.heartbeatMs ?? 5_000;
  const cancelCheckMs = options.cancelCheckMs ?? 1_000;
  if (!Number.isInteger(keep) || keep < 1) throw new Error('keep must be a positive integer');
  if (!Number.isInteger(heartbeatMs) || heartbeatMs < 1) throw new Error('heartbeatMs must be a positive integer');
  if (!Number.isInteger(cancelCheckMs) || cancelCheckMs < 1) throw new Error('cancelCheckMs must be a positive integer');
  const indexKey = `${options.keyPrefix}:redrives`;
  const runKey = (id: string) => `${options.keyPrefix}:redrive:${id}`;
  const cancelKey = (id: string) => `${options.keyPrefix}:redrive:${id}:cancel`;
  let current: { readonly id: string; readonly abort: AbortController; readonly done: Promise<StoredRun> } | undefined;
  // No prototype: keyed by letters' error codes, which may be anything (redriveDeadLetters.ts).
  const sentBackByErrorCode: Record<string, number> = Object.create(null) as Record<string, number>;
  const endedByStatus = { succeeded: 0, failed: 0, interrupted: 0, cancelled: 0 };

  const save = (run: StoredRun) => options.redis.set(runKey(run.id), JSON.stringify(run));
  const cancelOf = (text: string | null): CancelRequest | undefined => (text === null ? undefined : (JSON.parse(text) as CancelRequest));
  const present = ({ aliveAt, via, letters, result, ...run }: StoredRun, cancel: CancelRequest | undefined): RedriveRun => {
    const shown = {
      ...run,
      via: via ?? 'api',
      letters: letters ?? null,
      result: { ...result, skipped: { ...result.skipped, too_large: result.skipped.too_large ?? 0 }, notFound: result.notFound ?? [], tooLarge: result.tooLarge ?? [] },
      cancelRequestedBy: cancel?.by ?? null,
      cancelRequestedAt: cancel?.at ?? null,
    };
    // A runner that stopped saying it is alive (its process killed) did not finish.
    return run.status === 'running' && clock().getTime() - aliveAt > 6 * heartbeatMs
      ? { ...shown, status: 'interrupted', error: 'its process stopped before the end' }
      : shown;
  };

  /** Runs to the end and answers the run's last record; never rejects. */
  async function run(stored: StoredRun, request: RedriveRequest, abort: AbortController, release: () => Promise<void>): Promise<StoredRun> {
    let latest = stored;
    const recording = createOutageLog(logger);
    // Progress is for people: a record that cannot be written leaves the send-back going.
    const record = (next: StoredRun) => {
      // Counted as the run goes (a long one shows in the rate while it runs), from its counts' growth.
      if (!next.dryRun) {
        for (const [code, count] of Object.entries(next.result.republishedByErrorCode)) {
          const before = latest.result.republishedByErrorCode;
          const more = count - (Object.hasOwn(before, code) ? before[code]! : 0);
          if (more > 0) sentBackByErrorCode[code] = (sentBackByErrorCode[code] ?? 0) + more;
        }
      }
      latest = next;
      return save(next).then(
        () => recording.succeeded({ redrive: next.id }, 'recording the progress of a dead-letter send-back again'),
        (error: unknown) => recording.failed({ err: error, redrive: next.id }, 'cannot record the progress of a dead-letter send-back; it goes on'),
      );
    };
    // The runtime's one timer loop: a beat or a check never overlaps the one before it (a Redis
    // that does not answer queues no pile of commands), and both end with the run, which does
    // not wait for one in flight: a beat sent before the final record is still applied before it,
    // since Redis applies one connection's commands in order.
    const heartbeat = createPeriodicWorker({
      name: 'dead-letter send-back heartbeat',
      logger,
      intervalMs: heartbeatMs,
      runAtStart: false,
      abandonOnStop: true,
      run: () => record({ ...latest, aliveAt: clock().getTime() }),
    });
    // A cancellation asked of another API process reaches this one through Redis.
    const checking = createOutageLog(logger);
    const cancelCheck = createPeriodicWorker({
      name: 'dead-letter send-back cancellation check',
      logger,
      intervalMs: cancelCheckMs,
      runAtStart: false,
      abandonOnStop: true,
      run: async (signal) => {
        let text: string | null;
        try {
          text = await options.redis.get(cancelKey(stored.id));
        } catch (error) {
          if (!signal.aborted) checking.failed({ err: error, redrive: stored.id }, 'cannot look for a cancellation of a dead-letter send-back; looking again every interval');
          return;
        }
        checking.succeeded({ redrive: stored.id }, 'looking for a cancellation of a dead-letter send-back again');
        const cancel = cancelOf(text);
        if (cancel !== undefined) abort.abort(new RedriveCancelled(`cancelled by ${cancel.by?.keyName ?? 'an unnamed key'}`));
      },
    });
    const stopTimers = () => Promise.all([heartbeat.stop(), cancelCheck.stop()]);
    await Promise.all([heartbeat.start(), cancelCheck.start()]);
    try {
      const result = await redriveDeadLetters({
        kafka: options.kafka,
        dlqTopic: options.dlqTopic,
        usageTopic: options.usageTopic,
        errorCodes: request.errorCodes,
        ...(request.letters !== undefined ? { letters: request.letters } : {}),
        ...(request.since !== undefined ? { since: request.since } : {}),
        ...(request.dryRun ? { dryRun: true } : {}),
        ...(options.compression !== undefined ? { compression: options.compression } : {}),
        ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
        signal: abort.signal,
        logger,
        onProgress: (soFar) => record({ ...latest, result: soFar, aliveAt: clock().getTime() }),
        // As the progress, for people: the letters are sent whether or not the mark is written.
        onSent: (partition, offsets) =>
          options.deadLetters.markSentBack(partition, offsets, clock()).catch((error: unknown) => logger.warn({ err: error, redrive: stored.id }, 'cannot mark dead letters as sent back')),
      });
      await stopTimers();
      endedByStatus.succeeded += 1;
      await record({ ...latest, status: 'succeeded', result, finishedAt: clock().toISOString(), aliveAt: clock().getTime() });
      logger.info({ redrive: stored.id, ...result }, 'dead-letter send-back finished');
    } catch (error) {
      await stopTimers();
      const message = error instanceof Error ? error.message : String(error);
      const status = !abort.signal.aborted ? 'failed' : abort.signal.reason instanceof RedriveCancelled ? 'cancelled' : 'interrupted';
      endedByStatus[status] += 1;
      await record({ ...latest, status, error: status === 'cancelled' ? null : message, finishedAt: clock().toISOString(), aliveAt: clock().getTime() });
      logger.warn({ err: error, redrive: stored.id }, `dead-letter send-back ${status}`);
    } finally {
      await release().catch((error: unknown) => logger.warn({ err: error }, 'cannot release the dead-letter send-back lease'));
    }
    return latest;
  }

  async function read(id: string): Promise<RedriveRun | undefined> {
    const [text, cancel] = await options.redis.mget(runKey(id), cancelKey(id));
    return text === null || text === undefined ? undefined : present(JSON.parse(text) as StoredRun, cancelOf(cancel ?? null));
  }

  /** A begin() in flight (the lease, the run's record): a stop() then must wait for it and stop its run. */
  let beginning: Promise<unknown> | undefined;
  let stopWhileBeginning = false;

  function begin(request: RedriveRequest): Promise<{ readonly started: RedriveRun; readonly done: Promise<StoredRun> }> {
    const begun = beginRun(request);
    beginning = begun;
    const settled = () => {
      if (beginning !== begun) return;
      beginning = undefined;
      stopWhileBeginning = false;
    };
    begun.then(settled, settled);
    return begun;
  }

  async function beginRun(request: RedriveRequest): Promise<{ readonly started: RedriveRun; readonly done: Promise<StoredRun> }> {
    if (current !== undefined) throw new RedriveRunningError(current.id);
    if (request.since !== undefined && Number.isNaN(request.since.getTime())) throw new ValidationError('since must be a valid time');
    // The run is written out before the lease is taken: nothing may throw between taking the
    // lease and the try that releases it, or the lease stays held and no run starts again.
    const now = clock();
    const stored: StoredRun = {
      id: randomUUID(),
      status: 'running',
      via: request.via ?? 'api',
      errorCodes: request.errorCodes,
      letters: request.letters ?? null,
      since: request.since?.toISOString() ?? null,
      dryRun: request.dryRun === true,
      requestedBy: request.requestedBy,
      startedAt: now.toISOString(),
      finishedAt: null,
      result: EMPTY_RESULT,
      error: null,
      aliveAt: now.getTime(),
    };
    const lease = await tryAcquireAdvisoryLease({ pool: options.pool, name: REDRIVE_LEASE_NAME });
    if (lease === undefined) {
      const [newest] = await options.redis.zrevrange(indexKey, 0, 0);
      const running = newest === undefined ? undefined : await read(newest);
      throw new RedriveRunningError(running?.status === 'running' ? running.id : undefined);
    }
    try {
      const dropped = await options.redis.zrevrange(indexKey, keep - 1, -1);
      const transaction = options.redis.multi().set(runKey(stored.id), JSON.stringify(stored)).zadd(indexKey, now.getTime(), stored.id);
      if (dropped.length > 0) transaction.zrem(indexKey, ...dropped).unlink(...dropped.flatMap((id) => [runKey(id), cancelKey(id)]));
      await transaction.exec();
    } catch (error) {
      await lease.release();
      throw error;
    }
    const abort = new AbortController();
    // A lost lease (PostgreSQL unreachable) may let another run start: this one stops.
    void lease.lost.then((error) => abort.abort(new Error(`lost the send-back lease: ${error.message}`)));
    const done = run(stored, request, abort, () => lease.release()).finally(() => {
      current = undefined;
    });
    current = { id: stored.id, abort, done };
    // A Ctrl-C during the lease and the record's writes, which had no run to stop yet.
    if (stopWhileBeginning) abort.abort(new Error('the process is stopping'));
    logger.info({ redrive: stored.id, via: stored.via, errorCodes: request.errorCodes, letters: stored.letters, since: stored.since, dryRun: stored.dryRun }, 'dead-letter send-back started');
    return { started: present(stored, undefined), done };
  }

  async function runToEnd(request: RedriveRequest): Promise<RedriveRun> {
    const ended = await (await begin(request)).done;
    // As every process reads it, with who stopped it; this process's own record when Redis does not answer.
    return (await read(ended.id).catch(() => undefined)) ?? present(ended, undefined);
  }

  async function get(id: string): Promise<RedriveRun> {
    const run = await read(id);
    if (run === undefined) throw new RedriveNotFoundError(`no send-back of dead letters has id ${id}`);
    return run;
  }

  async function list(limit: number): Promise<RedriveRun[]> {
    const ids = await options.redis.zrevrange(indexKey, 0, Math.max(0, Math.min(limit, keep) - 1));
    if (ids.length === 0) return [];
    const texts = await options.redis.mget(ids.flatMap((id) => [runKey(id), cancelKey(id)]));
    return ids.flatMap((_, index) => {
      const text = texts[2 * index];
      return text === null || text === undefined ? [] : [present(JSON.parse(text) as StoredRun, cancelOf(texts[2 * index + 1] ?? null))];
    });
  }

  async function cancel(id: string, requestedBy: ActingKey | null): Promise<RedriveRun> {
    const run = await get(id);
    if (run.status !== 'running') throw new RedriveNotRunningError(`send-back ${id} is ${run.status} already: nothing is left to stop`);
    // The first request stands: a second one does not change who stopped it.
    const request: CancelRequest = { by: requestedBy, at: clock().toISOString() };
    await options.redis.set(cancelKey(id), JSON.stringify(request), 'NX');
    const mine = current;
    if (mine?.id === id) {
      mine.abort.abort(new RedriveCancelled(`cancelled by ${requestedBy?.keyName ?? 'an unnamed key'}`));
      // Bounded: a batch being sent to a stalled broker ends only when kafkajs gives up on it,
      // and the request answers well before then; the run's record says when it has stopped.
      await abandonable(mine.done, AbortSignal.timeout(LOCAL_CANCEL_WAIT_MS)).catch(() => undefined);
    }
    return get(id);
  }

  return {
    start: (request) => guardDeadLetters(async () => (await begin(request)).started),
    runToEnd: (request) => guardDeadLetters(() => runToEnd(request)),
    get: (id) => guardDeadLetters(() => get(id)),
    list: (limit) => guardDeadLetters(() => list(limit)),
    cancel: (id, requestedBy) => guardDeadLetters(() => cancel(id, requestedBy)),
    counters: () => ({ sentBackByErrorCode: { ...sentBackByErrorCode }, endedByStatus: { ...endedByStatus }, running: current === undefined ? 0 : 1 }),
    async stop() {
      if (beginning !== undefined) {
        stopWhileBeginning = true;
        await beginning.catch(() => undefined);
      }
      const running = current;
      if (running === undefined) return;
      running.abort.abort(new Error('the process is stopping'));
      await running.done;
    },
  };
}
