import { balanceStreamId, decide, evolve, initialBalanceState, type FoldedBalance } from '@tally/domain';
import type { EventStore, RecordedEvent } from '@tally/event-store';
import pino from 'pino';
import type { BalanceStateStore } from './balanceStateStore';
import { createBalanceStates } from './balanceStates';
import { recordedChargeStream } from './testing/recordedChargeStream';

const AT = '2026-03-01T12:00:00.000Z';

function open(balanceId: string, revision: bigint): FoldedBalance {
  const events = decide({ type: 'OpenBalance', balanceId, customerId: 'c', productId: 'p', name: 'n', lowBalanceThreshold: null, startingBalance: 0n, at: AT }, initialBalanceState);
  return { state: events.reduce(evolve, initialBalanceState), revision };
}

/** A balance's stream: its opening (2 events) and `charges` charges of 1 credit, as the store returns them. */
function stream(balanceId: string, charges: number): RecordedEvent[] {
  return recordedChargeStream({ balanceId, customerId: `c-${balanceId}`, productId: 'p' }, charges, AT);
}

/** States over these streams and a state store that records every save (and fails while `failing`). */
function given(options: { streams?: Record<string, RecordedEvent[]>; snapshotEveryWrite?: boolean; keepAfterLoadEvents?: number; cacheSize?: number } = {}) {
  const streams = options.streams ?? {};
  const saves: { balanceId: string; revision: bigint; replaceable: boolean }[][] = [];
  const control = { failing: false };
  const stateStore: BalanceStateStore = {
    load: async () => undefined,
    loadLatest: async () => new Map(),
    async save(states, saveOptions) {
      if (control.failing) throw new Error('database away');
      saves.push(states.map(({ balanceId, loaded }) => ({ balanceId, revision: loaded.revision, replaceable: saveOptions?.replaceable === true })));
    },
  };
  const byStream = new Map(Object.entries(streams).map(([balanceId, events]) => [balanceStreamId(balanceId), events]));
  const eventStore: Pick<EventStore, 'readStream' | 'readStreamsPaged'> = {
    async readStream(streamId, readOptions) {
      const from = Number(readOptions?.fromRevision ?? 0n);
      const events = byStream.get(streamId) ?? [];
      return events.slice(from, from + (readOptions?.maxCount ?? events.length));
    },
    readStreamsPaged(streamIds) {
      return (async function* () {
        for (const streamId of streamIds) if (byStream.has(streamId)) yield byStream.get(streamId)!;
      })();
    },
  };
  const states = createBalanceStates({
    eventStore,
    stateStore,
    logger: pino({ level: 'silent' }),
    snapshotEveryWrite: options.snapshotEveryWrite ?? false,
    snapshotAfterEvents: 10_000,
    ...(options.keepAfterLoadEvents !== undefined ? { keepAfterLoadEvents: options.keepAfterLoadEvents } : {}),
    ...(options.cacheSize !== undefined ? { cacheSize: options.cacheSize } : {}),
  });
  return { states, saves, control };
}

describe('BalanceStates write-behind (the metering consumer)', () => {
  it('keeps, at a flush, the latest written state of each balance behind, longest-waiting first, a bounded batch at a time', async () => {
    const { states, saves } = given({ keepAfterLoadEvents: 1 });
    await states.written([
      { balanceId: 'a', loaded: open('a', 5n), since: 4n },
      { balanceId: 'b', loaded: open('b', 7n), since: 6n },
    ]);
    await states.written([{ balanceId: 'c', loaded: open('c', 3n), since: 2n }]);
    // Written again: its newest state is the one kept, and it keeps its place (behind since its first write).
    await states.written([{ balanceId: 'a', loaded: open('a', 9n), since: 5n }]);
    expect(saves).toEqual([]);

    expect(await states.flush(2)).toEqual({ kept: 2, behind: 1 });
    expect(await states.flush(2)).toEqual({ kept: 1, behind: 0 });
    expect(await states.flush(2)).toEqual({ kept: 0, behind: 0 });
    expect(saves).toEqual([
      [
        { balanceId: 'a', revision: 9n, replaceable: true },
        { balanceId: 'b', revision: 7n, replaceable: true },
      ],
      [{ balanceId: 'c', revision: 3n, replaceable: true }],
    ]);
  });

  it('keeps a balance periodically only once keepAfterLoadEvents events were written since its last stored state; at a stop, every one', async () => {
    const { states, saves } = given({ keepAfterLoadEvents: 64 });
    // 'busy' reaches 64 events since its first write in three writes; 'quiet' stays at 63.
    await states.written([
      { balanceId: 'busy', loaded: open('busy', 40n), since: 9n },
      { balanceId: 'quiet', loaded: open('quiet', 72n), since: 9n },
    ]);
    await states.written([{ balanceId: 'busy', loaded: open('busy', 72n), since: 40n }]);
    expect(await states.flush(10)).toEqual({ kept: 0, behind: 0 });
    await states.written([{ balanceId: 'busy', loaded: open('busy', 73n), since: 72n }]);
    expect(await states.flush(10)).toEqual({ kept: 1, behind: 0 });
    expect(saves).toEqual([[{ balanceId: 'busy', revision: 73n, replaceable: true }]]);

    // Kept: 'busy' counts again from its next write.
    await states.written([{ balanceId: 'busy', loaded: open('busy', 80n), since: 73n }]);
    expect(await states.flush(10)).toEqual({ kept: 0, behind: 0 });
    expect(await states.flush(1, { all: true })).toEqual({ kept: 1, behind: 1 });
    expect(await states.flush(1, { all: true })).toEqual({ kept: 1, behind: 0 });
    expect(saves.slice(1)).toEqual([[{ balanceId: 'quiet', revision: 72n, replaceable: true }], [{ balanceId: 'busy', revision: 80n, replaceable: true }]]);
  });

  it('skips a balance whose state it no longer holds (forgotten after another writer moved it): nothing known to keep', async () => {
    const { states, saves } = given({ keepAfterLoadEvents: 1 });
    await states.written([
      { balanceId: 'a', loaded: open('a', 5n), since: 4n },
      { balanceId: 'b', loaded: open('b', 7n), since: 6n },
    ]);
    states.forget('a');
    expect(await states.flush(10)).toEqual({ kept: 1, behind: 0 });
    expect(saves).toEqual([[{ balanceId: 'b', revision: 7n, replaceable: true }]]);
  });

  it('leaves the balances behind when the write fails, for the next flush', async () => {
    const { states, saves, control } = given({ keepAfterLoadEvents: 1 });
    await states.written([{ balanceId: 'a', loaded: open('a', 5n), since: 4n }]);
    control.failing = true;
    expect(await states.flush(10)).toEqual({ kept: 0, behind: 1 });
    control.failing = false;
    expect(await states.flush(10)).toEqual({ kept: 1, behind: 0 });
    expect(saves).toEqual([[{ balanceId: 'a', revision: 5n, replaceable: true }]]);
  });

  it('holds no more balances behind than its cache holds states, the longest-waiting leaving first', async () => {
    const { states, saves } = given({ cacheSize: 2, keepAfterLoadEvents: 1 });
    // Loaded before it is written, as the consumer does: asked for more often than a, c is
    // admitted to the full cache (see LruCache's admission) and a's state leaves.
    await states.loadMany(['c']);
    await states.written(['a', 'b', 'c'].map((balanceId) => ({ balanceId, loaded: open(balanceId, 3n), since: 2n })));
    expect(await states.flush(10)).toEqual({ kept: 2, behind: 0 });
    expect(saves[0]!.map(({ balanceId }) => balanceId)).toEqual(['b', 'c']);
  });

  it('has nothing behind when every write keeps its state (the API)', async () => {
    const { states, saves } = given({ snapshotEveryWrite: true });
    await states.written([{ balanceId: 'a', loaded: open('a', 5n), since: 4n }]);
    expect(await states.flush(10)).toEqual({ kept: 0, behind: 0 });
    expect(saves).toEqual([[{ balanceId: 'a', revision: 5n, replaceable: false }]]);
  });

  it('keeps at once a load that folded keepAfterLoadEvents events or more, and not a shorter one', async () => {
    // long: its opening (2 events) and 62 charges = 64 events; short: 63 events.
    const { states, saves } = given({ streams: { long: stream('long', 62), short: stream('short', 61) }, keepAfterLoadEvents: 64 });
    const loaded = await states.loadMany(['long', 'short']);
    expect(loaded.get('long')?.revision).toBe(63n);
    expect(loaded.get('short')?.revision).toBe(62n);
    expect(saves).toEqual([[{ balanceId: 'long', revision: 63n, replaceable: true }]]);
  });
});
