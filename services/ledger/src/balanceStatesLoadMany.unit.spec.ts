import { decide, evolve, initialBalanceState, type FoldedBalance } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import pino from 'pino';
import type { BalanceStateStore } from './balanceStateStore';
import { createBalanceStates } from './balanceStates';

const AT = '2026-03-01T12:00:00.000Z';

function open(balanceId: string, revision: bigint): FoldedBalance {
  const events = decide({ type: 'OpenBalance', balanceId, customerId: 'c', productId: 'p', name: 'n', lowBalanceThreshold: null, startingBalance: 0n, at: AT }, initialBalanceState);
  return { state: events.reduce(evolve, initialBalanceState), revision };
}

/** Given stored states, states over an event store whose streams hold nothing more: every call recorded. */
function given(stored: Record<string, FoldedBalance>, pageEvents?: number) {
  const saved: { balanceId: string; revision: bigint }[] = [];
  const calls: string[] = [];
  const stateStore: BalanceStateStore = {
    load: () => Promise.reject(new Error('a batch loads snapshots in one query')),
    async loadLatest(balanceIds) {
      calls.push(`loadLatest ${balanceIds.join(',')}`);
      return new Map(balanceIds.flatMap((id) => (stored[id] === undefined ? [] : [[id, stored[id]] as const])));
    },
    async save(states) {
      for (const { balanceId, loaded } of states) saved.push({ balanceId, revision: loaded.revision });
    },
  };
  const eventStore: Pick<EventStore, 'readStream' | 'readStreamsPaged'> = {
    async readStream(streamId, options) {
      calls.push(`readStream ${streamId} from ${options?.fromRevision}`);
      return [];
    },
    // Streams that do not exist: no pages.
    readStreamsPaged(streamIds, options) {
      const from = [...(options?.fromRevisions ?? [])].map(([streamId, revision]) => ` ${streamId} from ${revision}`).join('');
      calls.push(`readStreamsPaged ${streamIds.join(',')}${from} pages of ${options?.maxPageEvents}`);
      return (async function* () {})();
    },
  };
  const states = createBalanceStates({ eventStore, stateStore, logger: pino({ level: 'silent' }), snapshotEveryWrite: false, snapshotAfterEvents: 100, ...(pageEvents !== undefined ? { pageEvents } : {}) });
  return { states, saved, calls };
}

describe('BalanceStates for a batch writer', () => {
  it('loads the balances it does not hold in one snapshot query and one paged read, and hands held ones out as they are', async () => {
    const { states, calls } = given({ b: open('b', 500n) });
    const first = await states.loadMany(['a', 'b', 'a']);
    expect(first.get('a')).toEqual({ state: { status: 'unopened' }, revision: -1n });
    expect(first.get('b')).toEqual(open('b', 500n));
    // One paged read: a stream with a snapshot from after it (its tail), the others from their start.
    expect(calls).toEqual(['loadLatest a,b', 'readStreamsPaged creditBalance-a,creditBalance-b creditBalance-b from 501 pages of 1000']);

    calls.length = 0;
    await states.written([{ balanceId: 'a', loaded: open('a', 0n), since: -1n }]);
    const second = await states.loadMany(['a', 'b']);
    // Both held now (b opened, a written): nothing is read.
    expect(calls).toEqual([]);
    expect(second.get('a')).toEqual(open('a', 0n));
  });

  it('reads in pages of pageEvents, as its other loads do: what one batch load holds in memory is bounded', async () => {
    const { states, calls } = given({}, 250);
    await states.loadMany(['a']);
    expect(calls).toEqual(['loadLatest a', 'readStreamsPaged creditBalance-a pages of 250']);
  });

  it('keeps a stored state only when a write takes the stream across a multiple of snapshotAfterEvents', async () => {
    const { states, saved } = given({});
    await states.written([
      { balanceId: 'a', loaded: open('a', 98n), since: 50n },
      { balanceId: 'b', loaded: open('b', 105n), since: 97n },
      { balanceId: 'c', loaded: open('c', 180n), since: 105n },
      { balanceId: 'd', loaded: open('d', 199n), since: 180n },
    ]);
    // Revision r means r + 1 events: b crossed 100 events, d reached 200.
    expect(saved).toEqual([
      { balanceId: 'b', revision: 105n },
      { balanceId: 'd', revision: 199n },
    ]);
  });
});
