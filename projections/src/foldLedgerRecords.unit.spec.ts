import fc from 'fast-check';
import type { BalanceEvent } from '@tally/domain';
import { snapshotFromHash, snapshotToHash } from './balanceSnapshot';
import { PositionedBalance, foldedFromSnapshot, snapshotOf } from './positionedBalance';
import { foldLedgerRecords, FoldResult } from './foldLedgerRecords';
import { toLedgerRecord, UnfoldableLedgerEventError, type LedgerRecord } from './ledgerRecord';

const BALANCE = 'b-1';
const at = (second: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();

const opened = (threshold: bigint | null = 5_000_000n): BalanceEvent => ({
  type: 'CreditBalanceOpened',
  balanceId: BALANCE,
  customerId: 'c-1',
  productId: 'p-1',
  name: 'Main',
  lowBalanceThreshold: threshold,
  overdraftLimit: 0n,
  occurredAt: at(0),
});
const toppedUp = (credits: bigint, second: number): BalanceEvent => ({
  type: 'CreditToppedUp',
  credits,
  source: 'manual',
  reason: null,
  balanceAfter: 0n,
  heldAfter: 0n,
  purchase: null,
  grant: null,
  refund: null,
  occurredAt: at(second),
});
const consumed = (credits: bigint, second: number): BalanceEvent => ({
  type: 'CreditConsumed',
  credits,
  source: 'manual',
  reason: null,
  usage: null,
  balanceAfter: 0n,
  heldAfter: 0n,
  occurredAt: at(second),
});

/** Records at revisions 0.. and positions spaced by `step` from `firstPosition`, as the global log interleaves streams. */
function records(events: readonly BalanceEvent[], firstPosition = 1n, step = 3n, firstRevision = 0n): LedgerRecord[] {
  return events.map((event, index) => ({
    balanceId: BALANCE,
    event,
    revision: firstRevision + BigInt(index),
    position: firstPosition + step * BigInt(index),
    recordedAt: new Date(0),
  }));
}

function folded(result: FoldResult): PositionedBalance {
  if (result.kind !== 'changed') throw new Error(`expected a change, got ${result.kind}`);
  return result.folded;
}

/** The snapshot readers get after folding `records` onto `base`. */
const snapshotAfter = (base: PositionedBalance | undefined, records: readonly LedgerRecord[]) => snapshotOf(folded(foldLedgerRecords(base, records)));

/** What the projector does between batches: write the snapshot as strings, read it back. */
const throughRedis = (balance: PositionedBalance) => foldedFromSnapshot(snapshotFromHash(snapshotToHash(snapshotOf(balance)))!)!;

describe('foldLedgerRecords', () => {
  it('folds a stream into the snapshot readers get: decimal strings, threshold state, revision and position of the last event', () => {
    expect(snapshotAfter(undefined, records([opened(), toppedUp(12_500_000n, 1), consumed(8_000_000n, 2)]))).toEqual({
      balanceId: BALANCE,
      customerId: 'c-1',
      productId: 'p-1',
      name: 'Main',
      balance: '4.5',
      held: '0',
      available: '4.5',
      overdraftLimit: '0',
      holds: '{}',
      lowBalanceThreshold: '5',
      belowThreshold: true,
      revision: '2',
      position: '7',
      updatedAt: at(2),
    });
  });

  it('is not below a threshold it equals, nor below an absent one', () => {
    expect(snapshotAfter(undefined, records([opened(), toppedUp(5_000_000n, 1)])).belowThreshold).toBe(false);
    const none = snapshotAfter(undefined, records([opened(null), consumed(1n, 1)]));
    expect(none).toMatchObject({ lowBalanceThreshold: null, belowThreshold: false, balance: '-0.000001' });
  });

  it('moves revision and position, not updatedAt, on warnings', () => {
    const events: BalanceEvent[] = [
      opened(),
      toppedUp(1_000_000n, 1),
      { type: 'LowBalanceWarned', threshold: 5_000_000n, balance: 1_000_000n, occurredAt: at(9) },
    ];
    expect(snapshotAfter(undefined, records(events))).toMatchObject({ revision: '2', position: '7', updatedAt: at(1) });
  });

  it('changes nothing when every record is at or below the snapshot position (re-delivery)', () => {
    const all = records([opened(), toppedUp(1_000_000n, 1), consumed(1n, 2)]);
    const stored = throughRedis(folded(foldLedgerRecords(undefined, all)));
    expect(foldLedgerRecords(stored, all)).toEqual({ kind: 'unchanged' });
    expect(foldLedgerRecords(stored, all.slice(1))).toEqual({ kind: 'unchanged' });
  });

  it('skips the records it already holds and applies the rest once', () => {
    const all = records([opened(), toppedUp(1_000_000n, 1), consumed(250_000n, 2), toppedUp(3n, 3)]);
    const early = throughRedis(folded(foldLedgerRecords(undefined, all.slice(0, 2))));
    expect(snapshotAfter(early, all)).toEqual(snapshotAfter(undefined, all));
  });

  it('compares positions exactly beyond 2^53, where doubles cannot tell neighbours apart', () => {
    const base = 2n ** 53n;
    expect(Number(base + 1n)).toBe(Number(base));
    const all = records([opened(), toppedUp(1_000_000n, 1), toppedUp(2_000_000n, 2)], base, 1n);
    const atSecond = throughRedis(folded(foldLedgerRecords(undefined, all.slice(0, 2))));
    expect(atSecond.position).toBe(base + 1n);
    expect(foldLedgerRecords(atSecond, all.slice(1, 2))).toEqual({ kind: 'unchanged' });
    expect(snapshotAfter(atSecond, all.slice(1))).toMatchObject({ balance: '3', position: (base + 2n).toString() });
  });

  it('reports a gap instead of folding records that do not continue what the snapshot holds', () => {
    const all = records([opened(), toppedUp(1_000_000n, 1), consumed(1n, 2), consumed(1n, 3)]);
    const stored = folded(foldLedgerRecords(undefined, all.slice(0, 2)));
    expect(foldLedgerRecords(stored, all.slice(3))).toEqual({ kind: 'gap' });
    // A lost snapshot: the batch starts mid-stream.
    expect(foldLedgerRecords(undefined, all.slice(2))).toEqual({ kind: 'gap' });
  });

  it('gives the same snapshot however the stream is cut into batches, through Redis strings in between', () => {
    const event = fc.oneof(
      fc.bigInt({ min: 1n, max: 10n ** 12n }).map((credits) => toppedUp(credits, 1)),
      fc.bigInt({ min: 1n, max: 10n ** 12n }).map((credits) => consumed(credits, 2)),
      fc.option(fc.bigInt({ min: 0n, max: 10n ** 12n })).map(
        (threshold): BalanceEvent => ({ type: 'CreditBalanceSettingsChanged', name: 'x', lowBalanceThreshold: threshold, overdraftLimit: 0n, occurredAt: at(3) }),
      ),
      // Holds placed in one batch and freed in a later one: the snapshot must carry them between.
      fc.record({ hold: fc.constantFrom('h-1', 'h-2', 'h-3'), credits: fc.bigInt({ min: 1n, max: 10n ** 9n }), free: fc.constantFrom('HoldCaptured', 'HoldReleased', 'HoldExpired') }),
    );
    /** Hold entries become a CreditsHeld when the hold is not open, else the freeing event named. */
    const withHolds = (entries: readonly (BalanceEvent | { hold: string; credits: bigint; free: string })[]): BalanceEvent[] => {
      const open = new Map<string, bigint>();
      return entries.map((entry): BalanceEvent => {
        if ('type' in entry) return entry;
        const figures = { balanceAfter: 0n, heldAfter: 0n, occurredAt: at(4) };
        const credits = open.get(entry.hold);
        if (credits === undefined) {
          open.set(entry.hold, entry.credits);
          return { type: 'CreditsHeld', holdId: entry.hold, credits: entry.credits, expiresAt: at(9), reference: null, ...figures };
        }
        open.delete(entry.hold);
        if (entry.free === 'HoldCaptured') return { type: 'HoldCaptured', holdId: entry.hold, credits, released: 0n, ...figures };
        if (entry.free === 'HoldReleased') return { type: 'HoldReleased', holdId: entry.hold, credits, reason: null, usageEventId: null, ...figures };
        return { type: 'HoldExpired', holdId: entry.hold, credits, expiresAt: at(9), ...figures };
      });
    };
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), fc.array(fc.nat(31), { maxLength: 5 }), (entries, cuts) => {
        const all = records([opened(), ...withHolds(entries)]);
        const bounds = [...new Set([1, ...cuts.map((cut) => Math.min(Math.max(cut, 1), all.length)), all.length])].sort((a, b) => a - b);
        let stored = throughRedis(folded(foldLedgerRecords(undefined, all.slice(0, bounds[0]))));
        for (let index = 1; index < bounds.length; index += 1) {
          // Each batch overlaps the previous one, as a re-delivery after a crash would.
          const result = foldLedgerRecords(stored, all.slice(Math.max(0, bounds[index - 1]! - 2), bounds[index]));
          if (result.kind === 'changed') stored = throughRedis(result.folded);
        }
        expect(snapshotOf(stored)).toEqual(snapshotAfter(undefined, all));
      }),
    );
  });
});

describe('snapshot strings', () => {
  it('carry held, available, the overdraft limit and the open holds', () => {
    const holding = records([
      opened(null),
      toppedUp(5_000_000n, 1),
      { type: 'CreditsHeld', holdId: 'h:1', credits: 7_000_000n, expiresAt: at(9), reference: 'job', balanceAfter: 5_000_000n, heldAfter: 7_000_000n, occurredAt: at(2) },
    ]);
    const snapshot = snapshotAfter(undefined, holding);
    expect(snapshot).toMatchObject({ balance: '5', held: '7', available: '-2', overdraftLimit: '0' });
    expect(JSON.parse(snapshot.holds)).toEqual({ 'h:1': { credits: '7', expiresAt: at(9), reference: 'job' } });
    expect(snapshotOf(throughRedis(folded(foldLedgerRecords(undefined, holding))))).toEqual(snapshot);
    expect(foldedFromSnapshot({ ...snapshot, holds: '[1]' })).toBeUndefined();
  });

  it('round-trip through the Redis hash, with no threshold as an empty string', () => {
    const snapshot = snapshotAfter(undefined, records([opened(null), toppedUp(1n, 1)]));
    const hash = snapshotToHash(snapshot);
    expect(hash).toMatchObject({ lowBalanceThreshold: '', belowThreshold: '0', balance: '0.000001' });
    expect(snapshotFromHash(hash)).toEqual(snapshot);
  });

  it('read a missing or partial hash as no snapshot', () => {
    expect(snapshotFromHash({})).toBeUndefined();
    const { name: _name, ...partial } = snapshotToHash(snapshotAfter(undefined, records([opened()])));
    expect(snapshotFromHash(partial)).toBeUndefined();
  });

  it('refuse a snapshot whose amounts or positions do not parse, so it is rebuilt rather than trusted', () => {
    const snapshot = snapshotAfter(undefined, records([opened(), toppedUp(1_000_000n, 1)]));
    expect(foldedFromSnapshot(snapshot)).toBeDefined();
    expect(foldedFromSnapshot({ ...snapshot, balance: 'lots' })).toBeUndefined();
    expect(foldedFromSnapshot({ ...snapshot, position: '1e3' })).toBeUndefined();
    expect(foldedFromSnapshot({ ...snapshot, revision: '-1' })).toBeUndefined();
  });

  it('names the event it cannot fold or decode (balance, revision, position), which the projector stops at', () => {
    const unopened = records([toppedUp(1n, 1)], 2n ** 53n + 1n);
    expect(() => foldLedgerRecords(undefined, unopened)).toThrow(UnfoldableLedgerEventError);
    expect(() => foldLedgerRecords(undefined, unopened)).toThrow(`balance ${BALANCE}: its event at revision 0, position 9007199254740993 (CreditToppedUp) cannot be folded`);
    const stored = { streamId: `creditBalance-${BALANCE}`, revision: 4n, position: 12n, type: 'CreditTeleported', data: {} };
    expect(() => toLedgerRecord(stored)).toThrow(UnfoldableLedgerEventError);
    expect(() => toLedgerRecord(stored)).toThrow(`balance ${BALANCE}: its event at revision 4, position 12 (CreditTeleported) cannot be decoded`);
  });
});
