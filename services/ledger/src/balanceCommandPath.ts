import { performance } from 'node:perf_hooks';
import { balanceStreamId, decide, evolve, type BalanceCommand, type BalanceEvent, type BalanceState, type FoldedBalance } from '@tally/domain';
import { WrongExpectedRevisionError, type AppendRequest, type AppendResult, type EventStore } from '@tally/event-store';
import { createBackoff } from '@tally/runtime';
import type { Logger } from 'pino';
import { expectedRevisionOf } from './balanceLoader';
import type { BalanceStates } from './balanceStates';
import { ledgerEventId, MAX_EVENTS_PER_COMMAND } from './deterministicId';
import { BalanceChangedError, CommandIdCollisionError, ConcurrencyExhaustedError, IdempotencyKeyReusedError } from './ledgerErrors';
import { fromRecordedEvent, toEventsToAppend, type BalanceContext, type LedgerActor, type RecordedBalanceEvent } from './ledgerEvents';

/** One command on one balance. */
export interface BalanceCommandRequest {
  readonly context: BalanceContext;
  /** Ledger event ids derive from it (deterministicId): a command whose first id is stored is done. */
  readonly commandId: string;
  readonly command: BalanceCommand;
  /**
   * Stored with the events; a stored run of the same command id with another digest is
   * IdempotencyKeyReusedError. A function makes it of the command's events (those decided now, or
   * an earlier run's as stored): for a request whose default only the state knows (a capture of
   * all of a hold), resolved from the state this path loads anyway instead of a read of its own.
   */
  readonly requestHash?: string | RequestHashOfEvents;
  /**
   * The refusal for a stored run with another digest, made of that run's events, when the command
   * id is not a client's key: a hold's one capture or release derives its id from the hold, so
   * another one finds the hold freed, not a key reused. Default IdempotencyKeyReusedError.
   */
  readonly otherRequestError?: (stored: readonly BalanceEvent[]) => Error;
  /** Who asked for it over the API, stored with its events; absent for usage, grants and expiries. */
  readonly actor?: LedgerActor;
  /** ledgerEventId(commandId, 0) when the caller derived it already (the consumer, for its legacy check): one hash less. */
  readonly firstEventId?: string;
  /**
   * The balance's revision the caller read (an HTTP If-Match): the command is decided only on a
   * state at that revision, else refused with BalanceChangedError, nothing appended. Checked on
   * the state the append's expected revision is made of, so a write landing in between makes the
   * append conflict, and the command decided again on the tail is refused: no read-then-write race.
   */
  readonly ifRevision?: bigint;
}

/** A request's digest made of the events its command comes to (see BalanceCommandRequest.requestHash). */
export type RequestHashOfEvents = (events: readonly BalanceEvent[]) => string;

export type BalanceCommandOutcome =
  | {
      readonly ok: true;
      /** The balance after the command's events; for a replay, as the first run left it. */
      readonly state: BalanceState;
      readonly revision: bigint;
      /** The events the command caused (on a replay: the ones it caused the first time); none read back with `withEvents: false`. */
      readonly events: readonly RecordedBalanceEvent[];
      /** How many events this call appended for the command (0 for a replay or a no-op). */
      readonly appended: number;
      /** The command id was found already done: nothing was appended now. */
      readonly replayed: boolean;
    }
  | { readonly ok: false; readonly error: unknown };

export interface BalanceCommandPath {
  /**
   * Runs a batch of commands: the outcomes come in request order. Commands on one balance are
   * decided in request order, each on the state the one before it left; all the batch's
   * balances are appended in one atomic call. A command refused by the decider fails alone.
   * With a load budget, a state that does not load within it throws BalanceLoadingError before
   * anything is appended.
   */
  execute(requests: readonly BalanceCommandRequest[], options?: ExecuteOptions): Promise<BalanceCommandOutcome[]>;
}

/**
 * How a batch writer that does its own bookkeeping (the metering consumer, at ≈20k events/s)
 * runs commands without round trips it does not need. The defaults are the API's.
 */
export interface ExecuteOptions {
  /**
   * Recorded in the same append as the commands' events (EventStore AppendManyOptions.markers),
   * also when no command appends anything or `requests` is empty: the record of what was
   * consumed and its effects cannot disagree. Recorded once per call. MarkerAlreadyRecordedError
   * and StoredWithoutMarkerError (with markers, a command's events found stored) are not handled
   * here: they go back to the caller, who reads its earlier runs and calls again.
   */
  readonly markers?: readonly string[];
  /**
   * The markers go only with an append that writes the commands' events: a call whose commands
   * are all refused, no-ops or replays records none. For a marker that stands for the commands'
   * own effect (a purchase's key fence, LedgerService.purchase), not for an input consumed (the
   * consumer's, recorded for usage that charges nothing on purpose). Default false.
   */
  readonly markersOnlyWithEvents?: boolean;
  /**
   * The caller vouches for earlier runs itself (the consumer, by its markers, which the append
   * checks): no read by event id for earlier runs. Default false. A command whose events turn
   * out to be stored all the same is still looked up and answered as the replay it is: an
   * append answered idempotent, or a conflict on its stream (the append reports some of a
   * request's ids stored as a stale revision).
   */
  readonly earlierRunsChecked?: boolean;
  /** Read the appended events back for the outcomes; default true. False: `events` is empty, `appended` counts them. */
  readonly withEvents?: boolean;
  /**
   * Decide on the states this process holds without reading each stream's tail first
   * (BalanceStates.loadMany: cached as they are, the others loaded in one batch). A stale state
   * costs a conflict, after which only the conflicting streams' tails are read. A refusal or a
   * no-op decided on a state not read in this call is not final: the stream's tail is read and
   * the command decided again before it stands (it appends nothing, so no expected revision
   * would catch a stale state). Default false: every state is read to the stream's end first.
   */
  readonly optimistic?: boolean;
  /**
   * With `optimistic`: states of these balances the caller has just had from the same
   * BalanceStates' loadMany (the consumer, waiting for openings), decided on as loadMany would give
   * them again. A full cache may not have kept them (see LruCache's admission), and reading them
   * twice per chunk would double a cold balance's cost. Ignored without `optimistic`.
   */
  readonly known?: ReadonlyMap<string, FoldedBalance>;
  /** Told of every append of this call lost to a concurrent writer (and so redone), for the caller's counters. */
  readonly onConflict?: (streamIds: readonly string[]) => void;
  /**
   * `performance.now()` when the write began (an HTTP request's arrival): the load budget counts
   * from it, so time spent queued behind the balance's other writes counts too. Default: now.
   */
  readonly startedAt?: number;
}

export interface ConflictRetryOptions {
  /** Appends that may conflict before the commands still pending fail with ConcurrencyExhaustedError. Default 30. */
  readonly maxAttempts?: number;
  /**
   * Optimistic attempts that may conflict before the next one holds every other append back
   * (EventStore.appendExclusively) and so cannot conflict. Default 3.
   */
  readonly exclusiveAfter?: number;
  /** Cap of the full-jitter exponential backoff between attempts, in ms. Default 250. */
  readonly maxBackoffMs?: number;
}

export interface BalanceCommandPathOptions {
  readonly eventStore: Pick<EventStore, 'appendMany' | 'appendExclusively' | 'readEventsById'>;
  readonly states: BalanceStates;
  readonly logger: Logger;
  readonly retry?: ConflictRetryOptions;
  /**
   * How long a write may wait for its balances' states to load (ms), well under the API's request
   * timeout so a client is answered (503 balance_loading) rather than cut off. The load goes on
   * in the background and its result is kept, so the retry is fast. Undefined or 0: no budget
   * (the metering consumer's batches have no client waiting; they wait as long as the fold takes).
   */
  readonly loadBudgetMs?: number;
}

interface Decided {
  readonly index: number;
  readonly eventIds: readonly string[];
  readonly after: FoldedBalance;
}

/**
 * What bounds a request's waits for balance states to load (the command path's, and reads of a
 * balance the read model lacks): the budget from `startedAt` (performance.now(), default now), but
 * never less than a tenth of it from now, so a request that spent its budget queued behind another
 * one still gets a look at the state that one may just have loaded (a tail read, if the load is
 * done). Undefined without a budget.
 */
export function loadBudgetSignal(loadBudgetMs: number, startedAt?: number): AbortSignal | undefined {
  if (loadBudgetMs <= 0) return undefined;
  const now = performance.now();
  // Whole milliseconds: AbortSignal.timeout refuses a fraction (performance.now() has them).
  return AbortSignal.timeout(Math.ceil(Math.max((startedAt ?? now) + loadBudgetMs - now, loadBudgetMs / 10)));
}

/** An exclusive attempt that decided nothing to write, with markers that must not go alone: rolled back. */
class NothingWritten extends Error {
  constructor(readonly planned: { readonly plans: StreamPlan[]; readonly writing: StreamPlan[] }) {
    super('nothing to write');
  }
}

/** What one execute() holds across its rounds. */
interface CallState {
  readonly optimistic: boolean;
  /** The states this call decides on: after a conflict only the events after them are read. */
  readonly known: Map<string, FoldedBalance>;
  /** Balances whose tail must be read before the next round decides (optimistic mode). */
  readonly stale: Set<string>;
  /** Balances whose state in `known` was the stream's end when read or appended in this call. */
  readonly verified: Set<string>;
  /** What ends this call's waits for state loads (the load budget), if anything does. */
  readonly wait: { readonly signal: AbortSignal } | undefined;
}

interface StreamPlan {
  readonly balanceId: string;
  readonly start: FoldedBalance;
  readonly append: AppendRequest & { events: AppendRequest['events'][number][] };
  readonly decided: Decided[];
  /**
   * Commands the decider refused (or that changed nothing), settled once the append confirms the
   * state they saw. Made for the first one: most streams of a chunk have none.
   */
  settled: Map<number, BalanceCommandOutcome> | undefined;
  end: FoldedBalance;
}

/**
 * The one command path for balance writes (issue 11 §1), used by the ledger service (API
 * writes, purchases, grants) and by the metering consumer's batches (issue 12), each process
 * with its own BalanceStates:
 *
 * 1. Earlier runs: one read by event id for every command's possible events. A command id
 *    already stored is done: its stored events are the answer (checked against the request's
 *    digest and its stream), whatever happened since. (Skipped with `earlierRunsChecked`.)
 * 2. State: BalanceStates gives each balance from the cache or a snapshot plus the stream's tail
 *    (with `optimistic`: as held, the rest loaded in one batch, no tail read).
 * 3. Decide: the pure decider, in request order per balance.
 * 4. Append: one appendMany with the revision each decision was made on (and the caller's
 *    markers). A concurrent writer makes it fail instead of overwriting; then the tail after the
 *    state already held is read (never the whole stream) and the pending commands are decided
 *    again, with full-jitter exponential backoff between attempts. After `exclusiveAfter` lost
 *    races the attempt runs with every other append held back (appendExclusively) and cannot
 *    lose: a write on a stream that the consumer appends to at full rate lands within
 *    exclusiveAfter + 1 attempts, and so does a consumer batch on a stream the API keeps busy.
 */
export function createBalanceCommandPath(options: BalanceCommandPathOptions): BalanceCommandPath {
  const { eventStore, states } = options;
  const logger = options.logger.child({ module: 'balance-command-path' });
  const maxAttempts = options.retry?.maxAttempts ?? 30;
  const maxBackoffMs = options.retry?.maxBackoffMs ?? 250;
  const exclusiveAfter = options.retry?.exclusiveAfter ?? 3;
  // The runtime's backoff with full jitter, from 2 ms doubling to the cap: writers that keep
  // colliding on one stream spread out instead of retrying in lockstep. This loop is not the
  // runtime's retry because its attempts are not alike: they count rounds that settled commands
  // found stored by another writer, and the later ones run exclusively.
  const backoff = createBackoff({ initialDelayMs: 2, maxDelayMs: maxBackoffMs });
  const loadBudgetMs = options.loadBudgetMs ?? 0;

  /** Settles the commands found already done; returns how many were. */
  async function settleEarlierRuns(
    requests: readonly BalanceCommandRequest[],
    pending: readonly number[],
    outcomes: (BalanceCommandOutcome | undefined)[],
  ): Promise<void> {
    const owners = new Map<string, number[]>();
    for (const index of pending) {
      for (let k = 0; k <= MAX_EVENTS_PER_COMMAND; k += 1) {
        const id = ledgerEventId(requests[index]!.commandId, k);
        owners.set(id, [...(owners.get(id) ?? []), index]);
      }
    }
    // The event_id index answers this, whatever the streams' lengths.
    const stored = await eventStore.readEventsById([...owners.keys()]);
    const earlier = new Map<number, RecordedBalanceEvent[]>();
    for (const recorded of stored) {
      for (const index of owners.get(recorded.id) ?? []) earlier.set(index, [...(earlier.get(index) ?? []), fromRecordedEvent(recorded)]);
    }
    await Promise.all(
      [...earlier].map(async ([index, events]) => {
        const request = requests[index]!;
        events.sort((a, b) => (a.revision < b.revision ? -1 : 1));
        const streamId = balanceStreamId(request.context.balanceId);
        const foreign = stored.filter((event) => events.some((e) => e.eventId === event.id) && event.streamId !== streamId);
        if (foreign.length > 0) {
          // Never "already done": the id was made for another balance.
          outcomes[index] = {
            ok: false,
            error: new CommandIdCollisionError(`command ${request.commandId} maps to ${foreign.map((e) => `${e.id} in ${e.streamId}`).join(', ')}, not ${streamId}`),
          };
          return;
        }
        const requestHash = typeof request.requestHash === 'function' ? request.requestHash(events.map(({ event }) => event)) : request.requestHash;
        if (requestHash !== undefined && events[0]!.metadata.requestHash !== requestHash) {
          const error = request.otherRequestError?.(events.map(({ event }) => event)) ?? new IdempotencyKeyReusedError('this Idempotency-Key was already used with a different request');
          outcomes[index] = { ok: false, error };
          return;
        }
        const last = events[events.length - 1]!;
        // What the first run answered: the fold up to its last event (a snapshot kept at that
        // revision when it was written), not the balance as it is now.
        const at = await states.at(request.context.balanceId, last.revision);
        outcomes[index] = { ok: true, state: at.state, revision: at.revision, events, appended: 0, replayed: true };
      }),
    );
  }

  /**
   * Brings `known` to what this round decides on: with `optimistic`, balances not held yet load in
   * one batch as they are cached or stored, and only the `stale` ones (a conflict, a refusal to
   * confirm) have their tails read; otherwise (and always with a `reader`, inside an exclusive
   * append) every balance's tail is read. A state whose tail was read is `verified`: the stream's
   * end as of this call.
   */
  async function refresh(
    balanceIds: readonly string[],
    call: CallState,
    reader?: Pick<EventStore, 'readStream'>,
  ): Promise<void> {
    const { known, stale, verified } = call;
    // The budget bounds only the wait for a state, before anything is decided or appended (never
    // inside appendExclusively's transaction, which reads with `reader` from a known state).
    const wait = reader === undefined ? call.wait : undefined;
    const toRead = call.optimistic && reader === undefined ? balanceIds.filter((balanceId) => stale.has(balanceId) && known.has(balanceId)) : balanceIds;
    if (call.optimistic) {
      const missing = balanceIds.filter((balanceId) => !known.has(balanceId));
      if (missing.length > 0) for (const [balanceId, state] of await states.loadMany(missing)) known.set(balanceId, state);
    }
    await Promise.all(
      toRead.map(async (balanceId) => {
        known.set(balanceId, await states.current(balanceId, known.get(balanceId), reader, wait));
        stale.delete(balanceId);
        verified.add(balanceId);
      }),
    );
  }

  function plan(requests: readonly BalanceCommandRequest[], pending: readonly number[], known: ReadonlyMap<string, FoldedBalance>): Map<string, StreamPlan> {
    const plans = new Map<string, StreamPlan>();
    for (const index of pending) {
      const { context, commandId, command } = requests[index]!;
      let stream = plans.get(context.balanceId);
      if (stream === undefined) {
        const start = known.get(context.balanceId)!;
        stream = {
          balanceId: context.balanceId,
          start,
          end: start,
          append: { streamId: balanceStreamId(context.balanceId), expectedRevision: expectedRevisionOf(start.revision), events: [] },
          decided: [],
          settled: undefined,
        };
        plans.set(context.balanceId, stream);
      }
      let events;
      try {
        const { ifRevision } = requests[index]!;
        if (ifRevision !== undefined && ifRevision !== stream.end.revision) {
          throw new BalanceChangedError(
            `credit balance "${context.balanceId}" changed since revision ${ifRevision} was read (it is at revision ${stream.end.revision}): nothing was changed; read it again and decide anew`,
          );
        }
        events = decide(command, stream.end.state);
      } catch (error) {
        (stream.settled ??= new Map()).set(index, { ok: false, error });
        continue;
      }
      const after: FoldedBalance = { state: events.reduce(evolve, stream.end.state), revision: stream.end.revision + BigInt(events.length) };
      if (events.length === 0) {
        (stream.settled ??= new Map()).set(index, { ok: true, state: after.state, revision: after.revision, events: [], appended: 0, replayed: false });
        continue;
      }
      // The request carries requestHash and firstEventId itself: no options object per command
      // (but for a digest made of the events, rare: a capture without an amount).
      const request = requests[index]!;
      const { requestHash } = request;
      const toAppend = toEventsToAppend(
        events,
        context,
        commandId,
        typeof requestHash === 'function' ? { ...request, requestHash: requestHash(events) } : (request as Omit<BalanceCommandRequest, 'requestHash'> & { readonly requestHash?: string }),
      );
      for (const event of toAppend) stream.append.events.push(event);
      stream.decided.push({ index, eventIds: toAppend.map((event) => event.id), after });
      stream.end = after;
    }
    return plans;
  }

  return {
    async execute(requests, executeOptions = {}) {
      const { earlierRunsChecked = false, withEvents = true, markersOnlyWithEvents = false } = executeOptions;
      const outcomes: (BalanceCommandOutcome | undefined)[] = new Array(requests.length).fill(undefined);
      // Once an append has started it finishes (or fails) as ever: the budget only ends waits
      // for states, so a write that runs out of it has appended nothing.
      const loadSignal = loadBudgetSignal(loadBudgetMs, executeOptions.startedAt);
      const call: CallState = {
        optimistic: executeOptions.optimistic ?? false,
        known: new Map(executeOptions.optimistic === true ? (executeOptions.known ?? []) : []),
        stale: new Set(),
        verified: new Set(),
        wait: loadSignal === undefined ? undefined : { signal: loadSignal },
      };
      const { known, stale, verified } = call;
      // Commands to look up as earlier runs although the caller checked them: their events were found stored by the append.
      const lookUp = new Set<number>();
      // The markers go with the first append that succeeds, and only with it.
      let markers = executeOptions.markers !== undefined && executeOptions.markers.length > 0 ? executeOptions.markers : undefined;
      // Markers still to record even if no command writes anything.
      const markersAlone = (): boolean => markers !== undefined && !markersOnlyWithEvents;
      const unsettled = (): number[] => {
        const indexes: number[] = [];
        for (let index = 0; index < requests.length; index += 1) if (outcomes[index] === undefined) indexes.push(index);
        return indexes;
      };
      for (let attempt = 1; ; attempt += 1) {
        const open = unsettled();
        if (open.length === 0 && !markersAlone()) return outcomes as BalanceCommandOutcome[];
        const lookFor = earlierRunsChecked ? open.filter((index) => lookUp.has(index)) : open;
        if (lookFor.length > 0) await settleEarlierRuns(requests, lookFor, outcomes);
        const pending = lookFor.length > 0 ? unsettled() : open;
        if (pending.length === 0 && !markersAlone()) return outcomes as BalanceCommandOutcome[];
        const balanceIds = [...new Set(pending.map((index) => requests[index]!.context.balanceId))];
        const appendOptions = markers === undefined ? undefined : { markers };
        const optionsFor = (writing: readonly StreamPlan[]) => (writing.length === 0 && !markersAlone() ? undefined : appendOptions);
        const planned = (): { plans: StreamPlan[]; writing: StreamPlan[] } => {
          const plans = [...plan(requests, pending, known).values()];
          return { plans, writing: plans.filter((stream) => stream.append.events.length > 0) };
        };
        let plans: StreamPlan[];
        let writing: StreamPlan[];
        let results: readonly AppendResult[];
        try {
          if (attempt <= exclusiveAfter) {
            await refresh(balanceIds, call);
            ({ plans, writing } = planned());
            const options = optionsFor(writing);
            results = writing.length === 0 && options === undefined ? [] : await eventStore.appendMany(writing.map((stream) => stream.append), options);
          } else {
            // Starvation ends here: a stream that another writer appends to back to back (the
            // consumer at full rate) can make every optimistic attempt lose. This one reads the
            // tail and appends while every other append waits, so it cannot conflict; it holds
            // them back for a tail read and a decision only. Every balance's state is in hand
            // first (outside the lock), so inside only the transaction's connection is used.
            const missing = balanceIds.filter((balanceId) => !known.has(balanceId));
            if (call.optimistic) {
              if (missing.length > 0) for (const [balanceId, state] of await states.loadMany(missing)) known.set(balanceId, state);
            } else {
              for (const balanceId of missing) known.set(balanceId, await states.current(balanceId, undefined, undefined, call.wait));
            }
            try {
              const exclusive = await eventStore.appendExclusively(async (reader) => {
                await refresh(balanceIds, call, reader);
                const value = planned();
                // The markers were handed over before the decision: undone by a rollback if they must not go alone.
                if (appendOptions !== undefined && optionsFor(value.writing) === undefined) throw new NothingWritten(value);
                return { requests: value.writing.map((stream) => stream.append), value };
              }, appendOptions);
              ({ plans, writing } = exclusive.value);
              results = exclusive.results;
            } catch (error) {
              if (!(error instanceof NothingWritten)) throw error;
              ({ plans, writing } = error.planned);
              results = [];
            }
          }
        } catch (error) {
          if (!(error instanceof WrongExpectedRevisionError)) throw error;
          if (attempt >= maxAttempts) {
            const exhausted = new ConcurrencyExhaustedError(`gave up after ${attempt} conflicting writes on ${error.streamIds.join(', ')}`, { cause: error });
            for (const index of pending) outcomes[index] = { ok: false, error: exhausted };
            return outcomes as BalanceCommandOutcome[];
          }
          // Only the streams another writer moved have their tails read next (the rest still hold).
          const moved = new Set(error.streamIds);
          for (const balanceId of balanceIds) if (moved.has(balanceStreamId(balanceId))) stale.add(balanceId);
          // The append reports a request some of whose ids are stored (by another writer, after
          // the caller looked for earlier runs) as this conflict; marked, it refuses them instead
          // (StoredWithoutMarkerError). Its commands are looked for next round, or deciding them
          // again on the tail would conflict for ever.
          if (earlierRunsChecked) {
            for (const index of pending) if (moved.has(balanceStreamId(requests[index]!.context.balanceId))) lookUp.add(index);
          }
          executeOptions.onConflict?.(error.streamIds);
          logger.debug({ streams: error.streamIds, attempt }, 'expected revision conflict; reading the tail and deciding again');
          await backoff.wait(attempt);
          continue;
        }
        if (writing.length > 0 || markersAlone()) markers = undefined;
        const recorded = withEvents
          ? new Map(
              (await eventStore.readEventsById(writing.flatMap((stream) => stream.append.events.map((event) => event.id)))).map((event) => [
                event.id,
                fromRecordedEvent(event),
              ]),
            )
          : undefined;
        const written: { balanceId: string; loaded: FoldedBalance; since: bigint }[] = [];
        writing.forEach((stream, position) => {
          if (results[position]!.idempotent) {
            // Another writer stored these very commands between the check and the append: the
            // next round finds them as earlier runs and checks their digests.
            known.delete(stream.balanceId);
            states.forget(stream.balanceId);
            for (const { index } of stream.decided) lookUp.add(index);
            return;
          }
          for (const { index, eventIds, after } of stream.decided) {
            outcomes[index] = {
              ok: true,
              state: after.state,
              revision: after.revision,
              events: recorded === undefined ? [] : eventIds.map((id) => recorded.get(id)!),
              appended: eventIds.length,
              replayed: false,
            };
          }
          known.set(stream.balanceId, stream.end);
          verified.add(stream.balanceId);
          written.push({ balanceId: stream.balanceId, loaded: stream.end, since: stream.start.revision });
        });
        const appendedTo = new Set(written.map((w) => w.balanceId));
        // The refusals and no-ops stand when the state they were decided on was the stream's end:
        // the append confirmed it, or it was read to the end in this call. Decided on a state held
        // from before (optimistic), they are decided again on the tail next round.
        const refusals = new Map<number, BalanceCommandOutcome>();
        for (const stream of plans) {
          if (stream.append.events.length > 0 && !appendedTo.has(stream.balanceId)) continue;
          if (stream.settled === undefined) continue;
          if (!verified.has(stream.balanceId)) {
            stale.add(stream.balanceId);
            continue;
          }
          for (const [index, outcome] of stream.settled) {
            if (outcome.ok) outcomes[index] = outcome;
            else refusals.set(index, outcome);
          }
        }
        // Unless the command itself is what made the state refuse it: a twin (a retry, a second
        // worker) may have stored it between this round's look for earlier runs and its read of
        // the state. Looked for again, such a command answers as the replay it is. (A caller that
        // checked earlier runs itself has ruled twins out: its markers went with this append.)
        if (refusals.size > 0 && !earlierRunsChecked) await settleEarlierRuns(requests, [...refusals.keys()], outcomes);
        for (const [index, refusal] of refusals) outcomes[index] ??= refusal;
        await states.written(written);
      }
    },
  };
}
