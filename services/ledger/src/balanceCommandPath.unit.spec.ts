import { balanceStreamId, decide, evolve, initialBalanceState, type BalanceCommand, type FoldedBalance } from '@tally/domain';
import { MarkerAlreadyRecordedError, WrongExpectedRevisionError, type AppendManyOptions, type AppendRequest, type EventStore } from '@tally/event-store';
import pino from 'pino';
import { performance } from 'node:perf_hooks';
import { waitFor } from '@tally/test-support';
import { createBalanceCommandPath, loadBudgetSignal, type BalanceCommandRequest, type ExecuteOptions } from './balanceCommandPath';
import type { BalanceStates } from './balanceStates';

const CREDIT = 1_000_000n;
const AT = '2026-03-01T12:00:00.000Z';
const logger = pino({ level: 'silent' });

/** A balance folded through the decider itself: opened with `credits`, then each further command. */
function balance(balanceId: string, credits: bigint, ...commands: BalanceCommand[]): FoldedBalance {
  let folded: FoldedBalance = { state: initialBalanceState, revision: -1n };
  const open: BalanceCommand = { type: 'OpenBalance', balanceId, customerId: 'c', productId: 'p', name: 'n', lowBalanceThreshold: null, startingBalance: credits, at: AT };
  for (const command of [open, ...commands]) {
    const events = decide(command, folded.state);
    folded = { state: events.reduce(evolve, folded.state), revision: folded.revision + BigInt(events.length) };
  }
  return folded;
}

const consume = (balanceId: string, usageId: string, credits: bigint): BalanceCommandRequest => ({
  context: { balanceId, customerId: 'c', productId: 'p' },
  commandId: `usage:${balanceId}:${usageId}`,
  command: { type: 'ConsumeUsage', credits, usage: { eventId: usageId, event: 'api_call', timestamp: AT, quantity: '1' }, at: AT },
});

const CONSUMER: ExecuteOptions = { earlierRunsChecked: true, withEvents: false, optimistic: true };

/**
 * Given held states (what loadMany hands out) and the streams' real ends (what current() reads
 * from a held state), a path over a scripted event store that records every call.
 */
function given(held: Record<string, FoldedBalance>, ends: Record<string, FoldedBalance> = held, script: { failFirstAppendWith?: Error } = {}) {
  const appends: { requests: readonly AppendRequest[]; options: AppendManyOptions | undefined }[] = [];
  const tailReads: { balanceId: string; from: bigint | undefined }[] = [];
  const loads: string[][] = [];
  let byIdReads = 0;
  let failure = script.failFirstAppendWith;
  const eventStore: Pick<EventStore, 'appendMany' | 'appendExclusively' | 'readEventsById'> = {
    async appendMany(requests, options) {
      appends.push({ requests, options });
      if (failure !== undefined) {
        const error = failure;
        failure = undefined;
        throw error;
      }
      return requests.map((request, i) => ({
        streamId: request.streamId,
        nextExpectedRevision: (request.expectedRevision === 'no_stream' ? -1n : (request.expectedRevision as bigint)) + BigInt(request.events.length),
        position: BigInt(i),
        idempotent: false,
      }));
    },
    appendExclusively: () => Promise.reject(new Error('not reached in these cases')),
    async readEventsById() {
      byIdReads += 1;
      return [];
    },
  };
  const states: BalanceStates = {
    async current(balanceId, known) {
      tailReads.push({ balanceId, from: known?.revision });
      return ends[balanceId]!;
    },
    at: () => Promise.reject(new Error('no replays in these cases')),
    flush: async () => ({ kept: 0, behind: 0 }),
    async loadMany(balanceIds) {
      loads.push([...balanceIds]);
      return new Map(balanceIds.map((id) => [id, held[id]!]));
    },
    written: async () => {},
    forget: () => {},
    close: async () => {},
  };
  const path = createBalanceCommandPath({ eventStore, states, logger, retry: { maxBackoffMs: 1 } });
  return { path, appends, tailReads, loads, byIdReads: () => byIdReads };
}

describe('the command path for a batch writer (the metering consumer\'s options)', () => {
  it('decides on held states without reading any tail, looks nothing up by id and reads nothing back', async () => {
    const { path, appends, tailReads, loads, byIdReads } = given({ a: balance('a', 10n * CREDIT), b: balance('b', 10n * CREDIT) });
    const outcomes = await path.execute([consume('a', 'u1', CREDIT), consume('b', 'u1', CREDIT), consume('a', 'u2', CREDIT)], { ...CONSUMER, markers: ['m1'] });

    const opened = balance('a', 10n * CREDIT).revision;
    expect(outcomes.map((outcome) => outcome.ok && [outcome.revision, outcome.appended, outcome.events.length])).toEqual([
      [opened + 1n, 1, 0],
      [opened + 1n, 1, 0],
      [opened + 2n, 1, 0],
    ]);
    expect(loads).toEqual([['a', 'b']]);
    expect(tailReads).toEqual([]);
    expect(byIdReads()).toBe(0);
    expect(appends).toHaveLength(1);
    expect(appends[0]!.options).toEqual({ markers: ['m1'] });
  });

  it('decides on the states the caller hands it as known, loading only the others', async () => {
    const a = balance('a', 10n * CREDIT);
    const { path, appends, tailReads, loads } = given({ a, b: balance('b', 10n * CREDIT) });
    const outcomes = await path.execute([consume('a', 'u1', CREDIT), consume('b', 'u1', CREDIT)], { ...CONSUMER, known: new Map([['a', a]]) });

    expect(outcomes.every((outcome) => outcome.ok)).toBe(true);
    expect(loads).toEqual([['b']]);
    expect(tailReads).toEqual([]);
    expect(appends[0]!.requests.map((request) => [request.streamId, request.expectedRevision])).toEqual([
      [balanceStreamId('a'), a.revision],
      [balanceStreamId('b'), a.revision],
    ]);
  });

  it('ignores known states without optimistic: every state is read to the stream\'s end', async () => {
    const a = balance('a', 10n * CREDIT);
    const { path, tailReads } = given({ a });
    await path.execute([consume('a', 'u1', CREDIT)], { known: new Map([['a', a]]) });
    expect(tailReads).toEqual([{ balanceId: 'a', from: undefined }]);
  });

  it('records markers given with no commands in an append of their own', async () => {
    const { path, appends } = given({});
    expect(await path.execute([], { ...CONSUMER, markers: ['m1', 'm2'] })).toEqual([]);
    expect(appends).toEqual([{ requests: [], options: { markers: ['m1', 'm2'] } }]);
  });

  it('records markers with a refused command (the consumer\'s), but not with markersOnlyWithEvents, where they go only with events', async () => {
    const notOpen: FoldedBalance = { state: initialBalanceState, revision: -1n };
    const topUp = (balanceId: string): BalanceCommandRequest => ({
      context: { balanceId, customerId: 'c', productId: 'p' },
      commandId: `purchase:${balanceId}`,
      command: { type: 'TopUp', credits: CREDIT, source: 'purchase', reason: null, at: AT },
    });

    const consumer = given({ n: notOpen });
    const [refused] = await consumer.path.execute([topUp('n')], { markers: ['m1'] });
    expect(refused!.ok).toBe(false);
    expect(consumer.appends).toEqual([{ requests: [], options: { markers: ['m1'] } }]);

    const fenced = given({ n: notOpen, a: balance('a', 0n) });
    const [refusedAlone] = await fenced.path.execute([topUp('n')], { markers: ['m1'], markersOnlyWithEvents: true });
    expect(refusedAlone!.ok).toBe(false);
    expect(fenced.appends).toEqual([]);
    const [bought] = await fenced.path.execute([topUp('a')], { markers: ['m1'], markersOnlyWithEvents: true });
    expect(bought!.ok && bought!.appended).toBe(1);
    expect(fenced.appends.map(({ requests, options }) => [requests.map((request) => request.streamId), options])).toEqual([[[balanceStreamId('a')], { markers: ['m1'] }]]);
  });

  it('after a conflict reads only the moved stream\'s tail, from the state it held, and sends the markers again', async () => {
    const a = balance('a', 10n * CREDIT);
    const aMoved = balance('a', 10n * CREDIT, { type: 'TopUp', credits: CREDIT, source: 'manual', reason: null, at: AT });
    const b = balance('b', 10n * CREDIT);
    const conflict = new WrongExpectedRevisionError([{ streamId: balanceStreamId('a'), expected: a.revision, actual: aMoved.revision }]);
    const { path, appends, tailReads } = given({ a, b }, { a: aMoved, b }, { failFirstAppendWith: conflict });
    const conflicts: (readonly string[])[] = [];
    const outcomes = await path.execute([consume('a', 'u1', CREDIT), consume('b', 'u1', CREDIT)], {
      ...CONSUMER,
      markers: ['m1'],
      onConflict: (streamIds) => conflicts.push(streamIds),
    });

    // Only the balance the conflict names is read again, and from the state held.
    expect(conflict.streamIds).toEqual([balanceStreamId('a')]);
    expect(tailReads).toEqual([{ balanceId: 'a', from: a.revision }]);
    expect(conflicts).toEqual([[balanceStreamId('a')]]);
    expect(appends).toHaveLength(2);
    expect(appends[1]!.options).toEqual({ markers: ['m1'] });
    expect(appends[1]!.requests.map((request) => [request.streamId, request.expectedRevision])).toEqual([
      [balanceStreamId('a'), aMoved.revision],
      [balanceStreamId('b'), b.revision],
    ]);
    expect(outcomes[0]!.ok && outcomes[0]!.state.status === 'open' && outcomes[0]!.state.balance).toBe(10n * CREDIT);
  });

  it('hands MarkerAlreadyRecordedError back to the caller, who reads its markers and calls again', async () => {
    const { path } = given({ a: balance('a', 10n * CREDIT) }, undefined, { failFirstAppendWith: new MarkerAlreadyRecordedError(['m1']) });
    await expect(path.execute([consume('a', 'u1', CREDIT)], { ...CONSUMER, markers: ['m1'] })).rejects.toBeInstanceOf(MarkerAlreadyRecordedError);
  });

  it('does not let a refusal decided on a held state stand before the stream\'s end confirms it', async () => {
    // Held: 1 credit. The stream's end: topped up to 11 since. A hold of 5 fits only the latter.
    const held = balance('a', CREDIT);
    const end = balance('a', CREDIT, { type: 'TopUp', credits: 10n * CREDIT, source: 'manual', reason: null, at: AT });
    const { path, appends, tailReads } = given({ a: held }, { a: end });
    const [outcome] = await path.execute(
      [{ context: { balanceId: 'a', customerId: 'c', productId: 'p' }, commandId: 'hold:a:k', command: { type: 'PlaceHold', holdId: 'a:k', credits: 5n * CREDIT, expiresAt: '2026-03-02T12:00:00.000Z', reference: null, at: AT } }],
      { optimistic: true },
    );

    expect(outcome!.ok && outcome!.revision).toBe(end.revision + 1n);
    expect(tailReads).toEqual([{ balanceId: 'a', from: held.revision }]);
    expect(appends.map((append) => append.requests.map((request) => request.expectedRevision))).toEqual([[end.revision]]);
  });

  it('lets a refusal stand once decided on the stream\'s end', async () => {
    const held = balance('a', CREDIT);
    const { path, appends, tailReads } = given({ a: held });
    const [outcome] = await path.execute(
      [{ context: { balanceId: 'a', customerId: 'c', productId: 'p' }, commandId: 'hold:a:k', command: { type: 'PlaceHold', holdId: 'a:k', credits: 5n * CREDIT, expiresAt: '2026-03-02T12:00:00.000Z', reference: null, at: AT } }],
      { optimistic: true, earlierRunsChecked: true },
    );

    expect(outcome!.ok).toBe(false);
    expect(!outcome!.ok && outcome!.error).toMatchObject({ code: 'insufficient_credits' });
    expect(tailReads).toHaveLength(1);
    expect(appends).toEqual([]);
  });
});

describe('loadBudgetSignal: how long a request may wait for a balance state to load', () => {
  it('is undefined without a budget', () => {
    expect(loadBudgetSignal(0, performance.now())).toBeUndefined();
  });

  it('gives what is left of the budget counted from the start, but at least a tenth of it', async () => {
    // Spent long ago: a tenth of 200 ms from now. Just begun: the whole minute.
    const spent = loadBudgetSignal(200, performance.now() - 10_000)!;
    const fresh = loadBudgetSignal(60_000, performance.now())!;
    expect(spent.aborted).toBe(false);
    await waitFor(() => spent.aborted, { description: 'the spent budget\'s tenth to run out', timeoutMs: 5_000, intervalMs: 5 });
    expect(fresh.aborted).toBe(false);
  });
});

describe('a command made against a revision read (If-Match)', () => {
  const rename = (ifRevision: bigint): BalanceCommandRequest => ({
    context: { balanceId: 'a', customerId: 'c', productId: 'p' },
    commandId: 'settings:a:1',
    command: { type: 'ChangeSettings', name: 'Renamed', at: AT },
    ifRevision,
  });

  it('is decided and appended on the state at that revision, with it as the expected revision', async () => {
    const read = balance('a', CREDIT);
    const { path, appends } = given({ a: read });
    const [outcome] = await path.execute([rename(read.revision)]);
    expect(outcome!.ok).toBe(true);
    expect(appends.map((append) => append.requests.map((request) => request.expectedRevision))).toEqual([[read.revision]]);
  });

  it('is refused (balance_changed), appending nothing, on a stream past it', async () => {
    const read = balance('a', CREDIT);
    const moved = balance('a', CREDIT, { type: 'TopUp', credits: CREDIT, source: 'manual', reason: null, at: AT });
    const { path, appends } = given({ a: moved });
    const [outcome] = await path.execute([rename(read.revision)]);
    expect(!outcome!.ok && outcome!.error).toMatchObject({ code: 'balance_changed' });
    expect(appends).toEqual([]);
  });

  it('is refused when another write lands between its read of the state and its append: the append conflicts, and the tail read decides', async () => {
    const read = balance('a', CREDIT);
    const moved = balance('a', CREDIT, { type: 'TopUp', credits: CREDIT, source: 'manual', reason: null, at: AT });
    // The stream's end as read first, then as another writer left it before the append.
    let reads = 0;
    const ends = {
      get a() {
        reads += 1;
        return reads === 1 ? read : moved;
      },
    };
    const conflict = new WrongExpectedRevisionError([{ streamId: balanceStreamId('a'), expected: read.revision, actual: moved.revision }]);
    const { path, appends } = given({ a: read }, ends, { failFirstAppendWith: conflict });
    const [outcome] = await path.execute([rename(read.revision)]);
    expect(!outcome!.ok && outcome!.error).toMatchObject({ code: 'balance_changed' });
    // The one append tried was made against the revision read, and lost: nothing was written.
    expect(appends.map((append) => append.requests.map((request) => request.expectedRevision))).toEqual([[read.revision]]);
  });
});
