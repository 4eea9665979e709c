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

export const consumeUsage = (credits: Micros, usage: UsageDetails = USAGE, holdId?: string): Command<'ConsumeUsage'> => ({
  type: 'ConsumeUsage',
  credits,
  usage,
  ...(holdId !== undefined ? { holdId } : {}),
  at: AT,
});

export const deductManually = (credits: Micros, reason: string | null = 'correction'): Command<'DeductManually'> => ({
  type: 'DeductManually',
  credits,
  reason,
  at: AT,
});

export const refundConsumption = (entryId: string, consumed: Micros, credits: Micros = consumed, reason: string | null = 'refund'): Command<'RefundConsumption'> => ({
  type: 'RefundConsumption',
  entryId,
  consumed,
  credits,
  reason,
  at: AT,
});

export const changeSettings = (
  settings: { name?: string; lowBalanceThreshold?: Micros | null; overdraftLimit?: Micros } = {},
): Command<'ChangeSettings'> => ({ type: 'ChangeSettings', ...settings, at: AT });

type Event<T extends BalanceEvent['type']> = Extract<BalanceEvent, { type: T }>;

export const opened = (lowBalanceThreshold: Micros | null = null, name = 'API credits'): Event<'CreditBalanceOpened'> => ({
  type: 'CreditBalanceOpened',
  balanceId: BALANCE_ID,
  customerId: 'cust-1',
  productId: 'prod-1',
  name,
  lowBalanceThreshold,
  overdraftLimit: 0n,
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
  heldAfter: 0n,
  purchase: null,
  grant: null,
  refund: null,
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
  heldAfter: 0n,
  occurredAt: AT,
});

export const deducted = (credits: Micros, balanceAfter: Micros, reason: string | null = 'correction'): Event<'CreditConsumed'> => ({
  type: 'CreditConsumed',
  credits,
  source: 'manual',
  reason,
  usage: null,
  balanceAfter,
  heldAfter: 0n,
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

export const settingsChanged = (
  name: string,
  lowBalanceThreshold: Micros | null,
  overdraftLimit: Micros = 0n,
): Event<'CreditBalanceSettingsChanged'> => ({
  type: 'CreditBalanceSettingsChanged',
  name,
  lowBalanceThreshold,
  overdraftLimit,
  occurredAt: AT,
});

/** An hour after AT: holds in tests expire then unless told otherwise. */
export const EXPIRES = '2026-03-01T13:00:00.000Z';

export const placeHold = (
  holdId: string,
  credits: Micros,
  overrides: Partial<Omit<Command<'PlaceHold'>, 'type' | 'holdId' | 'credits'>> = {},
): Command<'PlaceHold'> => ({ type: 'PlaceHold', holdId, credits, expiresAt: EXPIRES, reference: null, at: AT, ...overrides });

export const captureHold = (holdId: string, credits?: Micros, at: string = AT): Command<'CaptureHold'> => ({
  type: 'CaptureHold',
  holdId,
  ...(credits !== undefined ? { credits } : {}),
  reason: null,
  at,
});

export const releaseHold = (holdId: string, reason: string | null = null, at: string = AT): Command<'ReleaseHold'> => ({ type: 'ReleaseHold', holdId, reason, at });

export const expireHold = (holdId: string, at: string = EXPIRES): Command<'ExpireHold'> => ({ type: 'ExpireHold', holdId, at });

/** The figures every hold event records: the settled balance and the held total after it. */
interface Figures {
  readonly balanceAfter: Micros;
  readonly heldAfter: Micros;
}

export const held = (holdId: string, credits: Micros, { balanceAfter, heldAfter }: Figures, expiresAt = EXPIRES): Event<'CreditsHeld'> => ({
  type: 'CreditsHeld',
  holdId,
  credits,
  expiresAt,
  reference: null,
  balanceAfter,
  heldAfter,
  occurredAt: AT,
});

export const captured = (holdId: string, credits: Micros, released: Micros, { balanceAfter, heldAfter }: Figures): Event<'HoldCaptured'> => ({
  type: 'HoldCaptured',
  holdId,
  credits,
  released,
  balanceAfter,
  heldAfter,
  occurredAt: AT,
});

export const chargedByHold = (credits: Micros, { balanceAfter, heldAfter }: Figures): Event<'CreditConsumed'> => ({
  type: 'CreditConsumed',
  credits,
  source: 'hold',
  reason: null,
  usage: null,
  balanceAfter,
  heldAfter,
  occurredAt: AT,
});

export const released = (
  holdId: string,
  credits: Micros,
  { balanceAfter, heldAfter }: Figures,
  by: { reason?: string | null; usageEventId?: string | null } = {},
): Event<'HoldReleased'> => ({
  type: 'HoldReleased',
  holdId,
  credits,
  reason: by.reason ?? null,
  usageEventId: by.usageEventId ?? null,
  balanceAfter,
  heldAfter,
  occurredAt: AT,
});

export const expired = (holdId: string, credits: Micros, { balanceAfter, heldAfter }: Figures, at: string = EXPIRES): Event<'HoldExpired'> => ({
  type: 'HoldExpired',
  holdId,
  credits,
  expiresAt: EXPIRES,
  balanceAfter,
  heldAfter,
  occurredAt: at,
});
