import { evolve, foldBalance, initialBalanceState, OpenBalance } from './balance';
import { BalanceAlreadyOpenError, BalanceNotOpenError, InvalidAmountError, ValidationError } from './errors';
import {
  AT,
  BALANCE_ID,
  changeSettings,
  consumed,
  consumeUsage,
  CREDIT,
  deducted,
  deductManually,
  depleted,
  refundConsumption,
  openBalance,
  opened,
  settingsChanged,
  topUp,
  toppedUp,
  USAGE,
  warned,
} from './testing/balanceFixtures';
import { given } from './testing/decider';

const open = (state: ReturnType<typeof foldBalance>): OpenBalance => {
  if (state.status !== 'open') throw new Error('expected an open balance');
  return state;
};

describe('decide: opening a balance', () => {
  it('given nothing, when opened without a starting balance, then only CreditBalanceOpened', () => {
    const state = given([]).when(openBalance()).then([opened()]);
    expect(open(state)).toMatchObject({ balance: 0n, warned: false, name: 'API credits', lowBalanceThreshold: null });
  });

  it('records the starting balance as a top-up with source "starting", so the ledger shows it', () => {
    const state = given([])
      .when(openBalance({ startingBalance: 100n * CREDIT }))
      .then([opened(), toppedUp(100n * CREDIT, 100n * CREDIT, 'starting')]);
    expect(open(state).balance).toBe(100n * CREDIT);
  });

  it('keeps the threshold and does not warn when the starting balance is at or above it', () => {
    given([])
      .when(openBalance({ startingBalance: 10n * CREDIT, lowBalanceThreshold: 10n * CREDIT }))
      .then([opened(10n * CREDIT), toppedUp(10n * CREDIT, 10n * CREDIT, 'starting')]);
  });

  it('warns at once when the starting balance is below the threshold', () => {
    const state = given([])
      .when(openBalance({ startingBalance: 5n * CREDIT, lowBalanceThreshold: 10n * CREDIT }))
      .then([opened(10n * CREDIT), toppedUp(5n * CREDIT, 5n * CREDIT, 'starting'), warned(10n * CREDIT, 5n * CREDIT)]);
    expect(open(state).warned).toBe(true);
  });

  it('warns when opened empty with a threshold, but never reports depletion (it was never above zero)', () => {
    given([])
      .when(openBalance({ lowBalanceThreshold: 1n }))
      .then([opened(1n), warned(1n, 0n)]);
    given([])
      .when(openBalance({ lowBalanceThreshold: 0n }))
      .then([opened(0n)]);
  });

  it('rejects a negative starting balance', () => {
    given([]).when(openBalance({ startingBalance: -1n })).thenThrows(InvalidAmountError);
  });

  it('rejects a negative threshold and an empty name, as a settings change does', () => {
    // Accepting them would leave a balance that no later ChangeSettings (even a rename) could touch.
    given([]).when(openBalance({ lowBalanceThreshold: -1n })).thenThrows(InvalidAmountError);
    given([]).when(openBalance({ name: ' ' })).thenThrows(ValidationError);
  });

  it('refuses to open a balance that is already open', () => {
    given([opened()]).when(openBalance()).thenThrows(BalanceAlreadyOpenError);
    given([opened(), toppedUp(CREDIT, CREDIT)]).when(openBalance({ startingBalance: CREDIT })).thenThrows(BalanceAlreadyOpenError);
  });
});

describe('decide: commands on a balance that was never opened', () => {
  it.each([
    ['TopUp', topUp(CREDIT)],
    ['ConsumeUsage', consumeUsage(CREDIT)],
    ['DeductManually', deductManually(CREDIT)],
    ['RefundConsumption', refundConsumption('c-1', CREDIT)],
    ['ChangeSettings', changeSettings({ name: 'x' })],
  ])('%s is refused with BalanceNotOpenError', (_name, command) => {
    given([]).when(command).thenThrows(BalanceNotOpenError);
  });

  it('is refused even when the command would be a no-op', () => {
    given([]).when(consumeUsage(0n)).thenThrows(BalanceNotOpenError);
    given([]).when(changeSettings()).thenThrows(BalanceNotOpenError);
  });
});

describe('decide: top-ups', () => {
  const history = [opened(), toppedUp(10n * CREDIT, 10n * CREDIT, 'starting')];

  it('adds the credits and records the balance after', () => {
    given(history)
      .when(topUp(2_500_000n, { reason: 'goodwill' }))
      .then([toppedUp(2_500_000n, 12_500_000n, 'manual', { reason: 'goodwill' })]);
  });

  it('carries purchase and grant details through unchanged', () => {
    const purchase = { bundleId: 'starter', quantity: 2, unitPrice: '9.99', totalPrice: '19.98', currency: 'EUR' };
    given(history)
      .when(topUp(200n * CREDIT, { source: 'purchase', purchase }))
      .then([toppedUp(200n * CREDIT, 210n * CREDIT, 'purchase', { purchase })]);
    const grant = { subscriptionId: 'sub-1', planId: 'pro', period: 0, periodStart: '2026-03-01', periodEnd: '2026-04-01' };
    given(history)
      .when(topUp(50n * CREDIT, { source: 'grant', grant }))
      .then([toppedUp(50n * CREDIT, 60n * CREDIT, 'grant', { grant })]);
  });

  it.each([0n, -1n])('rejects %p credits', (credits) => {
    given(history).when(topUp(credits)).thenThrows(InvalidAmountError);
  });

  it('brings a negative balance back up without any warning event', () => {
    given([opened(), consumed(3n * CREDIT, -3n * CREDIT)])
      .when(topUp(5n * CREDIT))
      .then([toppedUp(5n * CREDIT, 2n * CREDIT)]);
  });

  it('ends an outstanding warning once the balance is back at the threshold', () => {
    const low = [opened(10n * CREDIT), toppedUp(5n * CREDIT, 5n * CREDIT, 'starting'), warned(10n * CREDIT, 5n * CREDIT)];
    expect(open(foldBalance(low)).warned).toBe(true);
    const below = given(low).when(topUp(4n * CREDIT)).then([toppedUp(4n * CREDIT, 9n * CREDIT)]);
    expect(open(below).warned).toBe(true);
    const atThreshold = given(low).when(topUp(5n * CREDIT)).then([toppedUp(5n * CREDIT, 10n * CREDIT)]);
    expect(open(atThreshold).warned).toBe(false);
  });
});

describe('decide: usage consumption', () => {
  const history = [opened(), toppedUp(10n * CREDIT, 10n * CREDIT, 'starting')];

  it('deducts the cost and records the usage event it came from', () => {
    const usage = { eventId: 'evt-42', event: 'tokens', timestamp: '2026-03-01T10:00:00.000Z', quantity: '1500' };
    given(history)
      .when(consumeUsage(1_500_000n, usage))
      .then([consumed(1_500_000n, 8_500_000n, usage)]);
  });

  it('is never refused: the balance goes negative and depletion is reported', () => {
    given(history)
      .when(consumeUsage(25n * CREDIT))
      .then([consumed(25n * CREDIT, -15n * CREDIT), depleted(-15n * CREDIT)]);
  });

  it('reports depletion when the balance lands exactly on zero', () => {
    given(history).when(consumeUsage(10n * CREDIT)).then([consumed(10n * CREDIT, 0n), depleted(0n)]);
  });

  it('does not report depletion again while the balance stays at or below zero', () => {
    given([...history, consumed(10n * CREDIT, 0n), depleted(0n)])
      .when(consumeUsage(1n))
      .then([consumed(1n, -1n)]);
    given([opened()]).when(consumeUsage(CREDIT)).then([consumed(CREDIT, -CREDIT)]);
  });

  it('reports depletion again after the balance was back above zero', () => {
    given([...history, consumed(12n * CREDIT, -2n * CREDIT), depleted(-2n * CREDIT), toppedUp(3n * CREDIT, CREDIT)])
      .when(consumeUsage(CREDIT))
      .then([consumed(CREDIT, 0n), depleted(0n)]);
  });

  it('yields no event at all for a zero cost', () => {
    const state = given(history).when(consumeUsage(0n)).then([]);
    expect(state).toEqual(foldBalance(history));
  });

  it('rejects a negative cost', () => {
    given(history).when(consumeUsage(-1n)).thenThrows(InvalidAmountError);
  });

  it('deducts a single micro-credit exactly', () => {
    given(history).when(consumeUsage(1n)).then([consumed(1n, 9_999_999n)]);
  });
});

describe('decide: manual deductions', () => {
  const history = [opened(), toppedUp(10n * CREDIT, 10n * CREDIT, 'starting')];

  it('is a consumption with source "manual", a reason and no usage', () => {
    given(history).when(deductManually(3n * CREDIT, 'refund reversal')).then([deducted(3n * CREDIT, 7n * CREDIT, 'refund reversal')]);
  });

  it('may take the balance below zero', () => {
    given(history)
      .when(deductManually(11n * CREDIT, null))
      .then([deducted(11n * CREDIT, -CREDIT, null), depleted(-CREDIT)]);
  });

  it.each([0n, -5n])('rejects %p credits', (credits) => {
    given(history).when(deductManually(credits)).thenThrows(InvalidAmountError);
  });
});

describe('decide: refunds', () => {
  const threshold = 5n * CREDIT;
  const history = [opened(threshold), toppedUp(10n * CREDIT, 10n * CREDIT, 'starting'), deducted(7n * CREDIT, 3n * CREDIT), warned(threshold, 3n * CREDIT)];
  const refunded = (credits: bigint, balanceAfter: bigint, reason: string | null = 'refund') =>
    toppedUp(credits, balanceAfter, 'refund', { reason, refund: { entryId: 'c-1' } });

  it('is a top-up with source "refund" naming the charge, of all of it by default', () => {
    given(history).when(refundConsumption('c-1', 7n * CREDIT)).then([refunded(7n * CREDIT, 10n * CREDIT)]);
  });

  it('gives back part of the charge, down to a micro-credit', () => {
    given(history).when(refundConsumption('c-1', 7n * CREDIT, 1n, 'partly')).then([refunded(1n, 3n * CREDIT + 1n, 'partly')]);
  });

  it('never gives back more than the charge took, nor nothing', () => {
    given(history).when(refundConsumption('c-1', 7n * CREDIT, 7n * CREDIT + 1n)).thenThrows(InvalidAmountError);
    given(history).when(refundConsumption('c-1', 7n * CREDIT, 0n)).thenThrows(InvalidAmountError);
  });

  it('re-arms the low-balance warning once the balance is back at its threshold, as any top-up', () => {
    const back = [...history, refunded(2n * CREDIT, threshold)];
    given(back).when(deductManually(1n)).then([deducted(1n, threshold - 1n), warned(threshold, threshold - 1n)]);
  });
});

describe('decide: settings', () => {
  const history = [opened(5n * CREDIT), toppedUp(10n * CREDIT, 10n * CREDIT, 'starting')];

  it('renames the balance and keeps the threshold', () => {
    const state = given(history).when(changeSettings({ name: 'Tokens' })).then([settingsChanged('Tokens', 5n * CREDIT)]);
    expect(open(state)).toMatchObject({ name: 'Tokens', lowBalanceThreshold: 5n * CREDIT });
  });

  it('changes or clears the threshold and keeps the name', () => {
    given(history).when(changeSettings({ lowBalanceThreshold: 2n * CREDIT })).then([settingsChanged('API credits', 2n * CREDIT)]);
    const cleared = given(history).when(changeSettings({ lowBalanceThreshold: null })).then([settingsChanged('API credits', null)]);
    expect(open(cleared).lowBalanceThreshold).toBeNull();
  });

  it('is a no-op when nothing changes', () => {
    given(history).when(changeSettings()).then([]);
    given(history).when(changeSettings({ name: 'API credits', lowBalanceThreshold: 5n * CREDIT })).then([]);
    given([opened()]).when(changeSettings({ lowBalanceThreshold: null })).then([]);
  });

  it('rejects an empty name and a negative threshold', () => {
    given(history).when(changeSettings({ name: '' })).thenThrows(ValidationError);
    given(history).when(changeSettings({ name: '   ' })).thenThrows(ValidationError);
    given(history).when(changeSettings({ lowBalanceThreshold: -1n })).thenThrows(InvalidAmountError);
  });

  it('warns when a raised threshold puts the balance below it', () => {
    given(history)
      .when(changeSettings({ lowBalanceThreshold: 10n * CREDIT + 1n }))
      .then([settingsChanged('API credits', 10n * CREDIT + 1n), warned(10n * CREDIT + 1n, 10n * CREDIT)]);
  });

  it('does not warn when the raised threshold equals the balance', () => {
    given(history).when(changeSettings({ lowBalanceThreshold: 10n * CREDIT })).then([settingsChanged('API credits', 10n * CREDIT)]);
  });

  it('does not warn twice when the threshold is raised while a warning is outstanding', () => {
    const low = [opened(5n * CREDIT), toppedUp(4n * CREDIT, 4n * CREDIT, 'starting'), warned(5n * CREDIT, 4n * CREDIT)];
    given(low).when(changeSettings({ lowBalanceThreshold: 8n * CREDIT })).then([settingsChanged('API credits', 8n * CREDIT)]);
  });

  it('warns again after a lowered threshold ended the warning and a raised one crosses again', () => {
    const low = [opened(5n * CREDIT), toppedUp(4n * CREDIT, 4n * CREDIT, 'starting'), warned(5n * CREDIT, 4n * CREDIT)];
    const lowered = [...low, settingsChanged('API credits', 3n * CREDIT)];
    expect(open(foldBalance(lowered)).warned).toBe(false);
    given(lowered)
      .when(changeSettings({ lowBalanceThreshold: 5n * CREDIT }))
      .then([settingsChanged('API credits', 5n * CREDIT), warned(5n * CREDIT, 4n * CREDIT)]);
  });

  it('ends an outstanding warning when the threshold is cleared', () => {
    const low = [opened(5n * CREDIT), toppedUp(4n * CREDIT, 4n * CREDIT, 'starting'), warned(5n * CREDIT, 4n * CREDIT)];
    const state = given(low).when(changeSettings({ lowBalanceThreshold: null })).then([settingsChanged('API credits', null)]);
    expect(open(state).warned).toBe(false);
  });
});

describe('decide: low-balance warnings', () => {
  const threshold = 10n * CREDIT;
  const history = [opened(threshold), toppedUp(20n * CREDIT, 20n * CREDIT, 'starting')];

  it('warns exactly when a change crosses below the threshold', () => {
    given(history).when(consumeUsage(10n * CREDIT)).then([consumed(10n * CREDIT, threshold)]);
    given(history)
      .when(consumeUsage(10n * CREDIT + 1n))
      .then([consumed(10n * CREDIT + 1n, threshold - 1n), warned(threshold, threshold - 1n)]);
  });

  it('does not warn again while the balance stays below the threshold', () => {
    const low = [...history, consumed(15n * CREDIT, 5n * CREDIT), warned(threshold, 5n * CREDIT)];
    given(low).when(consumeUsage(CREDIT)).then([consumed(CREDIT, 4n * CREDIT)]);
    given(low).when(deductManually(CREDIT)).then([deducted(CREDIT, 4n * CREDIT)]);
    given(low).when(topUp(4n * CREDIT)).then([toppedUp(4n * CREDIT, 9n * CREDIT)]);
  });

  it('warns again after the balance was back at the threshold and crosses once more', () => {
    const recovered = [
      ...history,
      consumed(15n * CREDIT, 5n * CREDIT),
      warned(threshold, 5n * CREDIT),
      toppedUp(5n * CREDIT, threshold),
    ];
    given(recovered).when(consumeUsage(1n)).then([consumed(1n, threshold - 1n), warned(threshold, threshold - 1n)]);
  });

  it('warns and reports depletion in one decision when a change crosses both', () => {
    given(history)
      .when(consumeUsage(25n * CREDIT))
      .then([consumed(25n * CREDIT, -5n * CREDIT), warned(threshold, -5n * CREDIT), depleted(-5n * CREDIT)]);
  });

  it('never warns without a threshold', () => {
    given([opened(), toppedUp(CREDIT, CREDIT, 'starting')])
      .when(consumeUsage(2n * CREDIT))
      .then([consumed(2n * CREDIT, -CREDIT), depleted(-CREDIT)]);
  });

  it('treats a zero threshold as "below zero"', () => {
    const history0 = [opened(0n), toppedUp(CREDIT, CREDIT, 'starting')];
    given(history0).when(consumeUsage(CREDIT)).then([consumed(CREDIT, 0n), depleted(0n)]);
    given(history0).when(consumeUsage(CREDIT + 1n)).then([consumed(CREDIT + 1n, -1n), warned(0n, -1n), depleted(-1n)]);
  });
});

describe('evolve', () => {
  it('starts unopened', () => {
    expect(initialBalanceState).toEqual({ status: 'unopened' });
    expect(foldBalance([])).toBe(initialBalanceState);
  });

  it('folds the balance from credits, not from the recorded balanceAfter', () => {
    const state = foldBalance([opened(), toppedUp(5n, 5n), consumed(2n, 3n), deducted(1n, 2n), toppedUp(8n, 10n)]);
    expect(open(state)).toEqual({
      status: 'open',
      balanceId: BALANCE_ID,
      customerId: 'cust-1',
      productId: 'prod-1',
      name: 'API credits',
      lowBalanceThreshold: null,
      balance: 10n,
      held: 0n,
      holds: {},
      overdraftLimit: 0n,
      warned: false,
      updatedAt: AT,
    });
  });

  it('takes updatedAt from the latest balance-changing event', () => {
    const later = '2026-03-02T00:00:00.000Z';
    const state = foldBalance([opened(), { ...toppedUp(5n, 5n), occurredAt: later }]);
    expect(open(state).updatedAt).toBe(later);
  });

  it('marks a warning outstanding, and depletion changes nothing', () => {
    const base = foldBalance([opened(CREDIT)]);
    expect(open(evolve(base, warned(CREDIT, 0n))).warned).toBe(true);
    expect(evolve(base, depleted(0n))).toBe(base);
  });

  it.each([
    ['CreditToppedUp', toppedUp(1n, 1n)],
    ['CreditConsumed', consumed(1n, -1n, USAGE)],
    ['LowBalanceWarned', warned(1n, 0n)],
    ['CreditBalanceSettingsChanged', settingsChanged('x', null)],
  ])('refuses %s on a balance that was never opened', (_type, event) => {
    expect(() => evolve(initialBalanceState, event)).toThrow(BalanceNotOpenError);
  });
});
