import type { BalanceCommand, BalanceEvent, TopUpSource, UsageDetails } from '../balance';
import type { Micros } from '../credits';

/** Builders for balance commands and events in tests. Amounts are bigint micro-credits. */

export const CREDIT: Micros = 1_000_000n;
export const AT = '2026-03-01T12:00:00.000Z';
export const BALANCE_ID = 'bal-1';

export const USAGE: UsageDetails = {
  eventId: 'evt-1',
  event: 'api_call',
  timestamp: '2026-03-01T11:59:59.000Z',
  quantity: '1',
};

type Command<T extends BalanceCommand['type']> = Extract<BalanceCommand, { type: T }>;

export function openBalance(overrides: Partial<Omit<Command<'OpenBalance'>, 'type'>> = {}): Command<'OpenBalance'> {
  return {
    type: 'OpenBalance',
    balanceId: BALANCE_ID,
    customerId: 'cust-1',
    productId: 'prod-1',
    name: 'API credits',
    lowBalanceThreshold: null,
    startingBalance: 0n,
    at: AT,
    ...overrides,
  };
}

export const topUp = (credits: Micros, overrides: Partial<Omit<Command<'TopUp'>, 'type' | 'credits'>> = {}): Command<'TopUp'> => ({
  type: 'TopUp',
  credits,
  source: 'manual',
  reason: null,
  at: AT,
  ...overrides,
});

export const consumeUsage = (credits: Micros, usage: UsageDetails = USAGE): Command<'ConsumeUsage'> => ({
  type: 'ConsumeUsage',
  credits,
  usage,
  at: AT,
});

export const deductManually = (credits: Micros, reason: string | null = 'correction'): Command<'DeductManually'> => ({
  type: 'DeductManually',
  credits,
  reason,
  at: AT,
});

export const changeSettings = (
  settings: { name?: string; lowBalanceThreshold?: Micros | null } = {},
): Command<'ChangeSettings'> => ({ type: 'ChangeSettings', ...settings, at: AT });

type Event<T extends BalanceEvent['type']> = Extract<BalanceEvent, { type: T }>;

export const opened = (lowBalanceThreshold: Micros | null = null, name = 'API credits'): Event<'CreditBalanceOpened'> => ({
  type: 'CreditBalanceOpened',
  balanceId: BALANCE_ID,
  customerId: 'cust-1',
  productId: 'prod-1',
  name,
  lowBalanceThreshold,
  occurredAt: AT,
});

export const toppedUp = (
  credits: Micros,
  balanceAfter: Micros,
  source: TopUpSource = 'manual',
  overrides: Partial<Omit<Event<'CreditToppedUp'>, 'type' | 'credits' | 'balanceAfter' | 'source'>> = {},
): Event<'CreditToppedUp'> => ({
  type: 'CreditToppedUp',
  credits,
  source,
  reason: null,
  balanceAfter,
  purchase: null,
  grant: null,
  occurredAt: AT,
  ...overrides,
});

export const consumed = (credits: Micros, balanceAfter: Micros, usage: UsageDetails = USAGE): Event<'CreditConsumed'> => ({
  type: 'CreditConsumed',
  credits,
  source: 'usage',
  reason: null,
  usage,
  balanceAfter,
  occurredAt: AT,
});

export const deducted = (credits: Micros, balanceAfter: Micros, reason: string | null = 'correction'): Event<'CreditConsumed'> => ({
  type: 'CreditConsumed',
  credits,
  source: 'manual',
  reason,
  usage: null,
  balanceAfter,
  occurredAt: AT,
});

export const warned = (threshold: Micros, balance: Micros): Event<'LowBalanceWarned'> => ({
  type: 'LowBalanceWarned',
  threshold,
  balance,
  occurredAt: AT,
});

export const depleted = (balance: Micros): Event<'CreditBalanceDepleted'> => ({
  type: 'CreditBalanceDepleted',
  balance,
  occurredAt: AT,
});

export const settingsChanged = (name: string, lowBalanceThreshold: Micros | null): Event<'CreditBalanceSettingsChanged'> => ({
  type: 'CreditBalanceSettingsChanged',
  name,
  lowBalanceThreshold,
  occurredAt: AT,
});
