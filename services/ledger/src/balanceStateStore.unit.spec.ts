import { foldBalance, type BalanceEvent, type OpenBalance } from '@tally/domain';
import fc from 'fast-check';
import { BALANCE_STATE_VERSION, decodeBalanceState, encodeBalanceState } from './balanceStateStore';
import { arbitraryOpenBalance } from './testing/arbitraryOpenBalance';

const AT = '2026-03-01T12:00:00.000Z';
const LATER = '2026-03-02T08:30:00.000Z';

/** Every event type once, in an order that crosses the threshold, warns, depletes and recovers. */
const HISTORY: BalanceEvent[] = [
  { type: 'CreditBalanceOpened', balanceId: 'bal-1', customerId: 'cus-1', productId: 'prod-1', name: 'API credits', lowBalanceThreshold: 5_000_000n, overdraftLimit: 0n, occurredAt: AT },
  { type: 'CreditToppedUp', credits: 10_000_000n, source: 'starting', reason: null, balanceAfter: 10_000_000n, heldAfter: 0n, purchase: null, grant: null, refund: null, occurredAt: AT },
  { type: 'CreditConsumed', credits: 7_500_001n, source: 'usage', reason: null, usage: { eventId: 'e1', event: 'api_call', timestamp: AT, quantity: '1' }, balanceAfter: 2_499_999n, heldAfter: 0n, occurredAt: AT },
  { type: 'LowBalanceWarned', threshold: 5_000_000n, balance: 2_499_999n, occurredAt: AT },
  { type: 'CreditsHeld', holdId: 'h-1', credits: 1_000_000n, expiresAt: LATER, reference: 'job', balanceAfter: 2_499_999n, heldAfter: 1_000_000n, occurredAt: AT },
  { type: 'CreditsHeld', holdId: 'h-2', credits: 250_000n, expiresAt: LATER, reference: null, balanceAfter: 2_499_999n, heldAfter: 1_250_000n, occurredAt: AT },
  { type: 'CreditConsumed', credits: 3_000_000n, source: 'manual', reason: 'fix', usage: null, balanceAfter: -500_001n, heldAfter: 1_250_000n, occurredAt: AT },
  { type: 'CreditBalanceDepleted', balance: -500_001n, occurredAt: AT },
  { type: 'HoldReleased', holdId: 'h-2', credits: 250_000n, reason: null, usageEventId: null, balanceAfter: -500_001n, heldAfter: 1_000_000n, occurredAt: AT },
  { type: 'CreditBalanceSettingsChanged', name: 'Renamed', lowBalanceThreshold: 1_000_000n, overdraftLimit: 2_000_000n, occurredAt: LATER },
];

describe('balance snapshots', () => {
  it('are folds of the current event schema and fold version', () => {
    // A new event schema or BALANCE_FOLD_VERSION gives a new version: older snapshots are then never read.
    expect(BALANCE_STATE_VERSION).toBe('events-v2.fold-v2');
  });

  it('store what evolve gives for a known history (when this fails, evolve changed: bump BALANCE_FOLD_VERSION)', () => {
    const state = foldBalance(HISTORY) as OpenBalance;
    expect(encodeBalanceState(state)).toEqual({
      balanceId: 'bal-1',
      customerId: 'cus-1',
      productId: 'prod-1',
      name: 'Renamed',
      lowBalanceThreshold: '1000000',
      balance: '-500001',
      held: '1000000',
      holds: { 'h-1': { credits: '1000000', expiresAt: LATER, reference: 'job' } },
      overdraftLimit: '2000000',
      warned: true,
      updatedAt: LATER,
    });
  });

  it('read back exactly the state written, through JSON, micro-credits and all', () => {
    fc.assert(
      fc.property(arbitraryOpenBalance(), (state) => {
        expect(decodeBalanceState(JSON.parse(JSON.stringify(encodeBalanceState(state))))).toEqual(state);
      }),
    );
  });

  it('refuse a row that is not what they wrote instead of guessing', () => {
    const good = encodeBalanceState(foldBalance(HISTORY) as OpenBalance);
    expect(() => decodeBalanceState({ ...good, balance: 12.5 })).toThrow('balance');
    expect(() => decodeBalanceState({ ...good, lowBalanceThreshold: '1e6' })).toThrow('lowBalanceThreshold');
    expect(() => decodeBalanceState({ ...good, warned: 'yes' })).toThrow('warned');
    expect(() => decodeBalanceState(null)).toThrow();
  });
});
