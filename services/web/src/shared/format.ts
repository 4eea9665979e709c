import type { LedgerEntry, Period } from './apiTypes';

/** Decimal strings stay strings: grouping digits for reading is text work, not arithmetic. */
export function formatCredits(value: string): string {
  const negative = value.startsWith('-');
  const [whole = '0', fraction] = (negative ? value.slice(1) : value).split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${negative ? '-' : ''}${grouped}${fraction !== undefined && fraction !== '' ? `.${fraction}` : ''}`;
}

/** Two decimal strings of the same value ("9.9" and "9.90", "050" and "50"): compared as text once each is in its shortest spelling. */
export function sameDecimal(a: string, b: string): boolean {
  const shortest = (value: string) => {
    const negative = value.startsWith('-');
    const [whole = '', fraction = ''] = (negative ? value.slice(1) : value).split('.');
    const digits = `${whole.replace(/^0+(?=\d)/, '') || '0'}${fraction.replace(/0+$/, '') === '' ? '' : `.${fraction.replace(/0+$/, '')}`}`;
    return negative && digits !== '0' ? `-${digits}` : digits;
  };
  return shortest(a) === shortest(b);
}

/** Whether a bundle still has the terms it had (credits and price, by value; the currency as written). */
export function sameBundleTerms(a: { credits: string; price: { amount: string; currency: string } }, b: { credits: string; price: { amount: string; currency: string } }): boolean {
  return sameDecimal(a.credits, b.credits) && sameDecimal(a.price.amount, b.price.amount) && a.price.currency === b.price.currency;
}

export function formatPrice(price: { amount: string; currency: string }): string {
  return `${formatCredits(price.amount)} ${price.currency}`;
}

/** Credits that moved, with the sign of the way they moved; nothing moved has no way, so no sign ("0", not "−0"). */
export function signedCredits(value: string, sign: '+' | '−' | ''): string {
  return `${/^0*(\.0*)?$/.test(value) ? '' : sign}${formatCredits(value)}`;
}

/** A bundle as every offer of it says it: "1,000 credits for 9.90 EUR". */
export function bundleTerms(bundle: { credits: string; price: { amount: string; currency: string } }): string {
  return `${formatCredits(bundle.credits)} credits for ${formatPrice(bundle.price)}`;
}

/** A plan item's period in words: "per month", "every 14 days". */
export function periodText(period: Period): string {
  return typeof period === 'string' ? `per ${period}` : `every ${period.days} days`;
}

/** timeStyle 'long' ends with the zone ("UTC", "GMT+1"): times are the reader's, statements UTC months. */
const TIME_STYLE = { dateStyle: 'short', timeStyle: 'long' } as const;
const TIME = new Intl.DateTimeFormat(undefined, TIME_STYLE);

/** An instant in the reader's zone, named; `timeZone` for another (a test's fixed one). */
export function formatTime(iso: string, timeZone?: string): string {
  return (timeZone === undefined ? TIME : new Intl.DateTimeFormat(undefined, { ...TIME_STYLE, timeZone })).format(new Date(iso));
}

/** "12 s ago", for how fresh a figure is. */
export function age(iso: string, now: number): string {
  const seconds = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

const MONTH_PATTERN = /^([0-9]{4})-(0[1-9]|1[0-2])$/;
const MONTH_NAME = new Intl.DateTimeFormat(undefined, { month: 'long', year: 'numeric', timeZone: 'UTC' });

/** The calendar month (UTC) an instant falls in, as a month input writes it: "2026-03". */
export function monthOf(millis: number): string {
  return new Date(millis).toISOString().slice(0, 7);
}

/** A month input's "2026-03" as the statement's period, [its first instant, the next month's) in UTC; undefined for anything else. */
export function monthPeriod(month: string): { from: string; to: string } | undefined {
  const parts = MONTH_PATTERN.exec(month);
  if (parts === null) return undefined;
  const [year, index] = [Number(parts[1]), Number(parts[2]) - 1];
  return { from: monthStart(year, index), to: monthStart(year, index + 1) };
}

/** Not Date.UTC, which reads the years 0 to 99 as 1900 to 1999 (the API states such months as they are). */
function monthStart(year: number, monthIndex: number): string {
  const start = new Date(0);
  start.setUTCFullYear(year, monthIndex, 1);
  return start.toISOString();
}

/** "March 2026", in the reader's language; undefined for what is not a month. */
export function monthName(month: string): string | undefined {
  const period = monthPeriod(month);
  return period === undefined ? undefined : MONTH_NAME.format(new Date(period.from));
}

/**
 * Each ledger entry type in a reader's words. Keyed by the API's own types, so a type added there
 * fails the build until it is named here.
 */
const ENTRY_LABELS: Readonly<Record<LedgerEntry['type'], string>> = {
  CreditBalanceOpened: 'Opened',
  CreditToppedUp: 'Top-up',
  CreditConsumed: 'Consumed',
  LowBalanceWarned: 'Below warning limit',
  CreditBalanceDepleted: 'Depleted',
  CreditBalanceSettingsChanged: 'Settings changed',
  CreditsHeld: 'Held for a job',
  HoldCaptured: 'Hold captured',
  HoldReleased: 'Hold released',
  HoldExpired: 'Hold expired',
};

export function entryLabel(entry: { type: string; source: string | null; usageEvent: string | null }): string {
  if (entry.type === 'CreditConsumed' && entry.source === 'hold') return 'Charged from a hold';
  if (entry.type === 'CreditConsumed') return entry.usageEvent ?? 'Usage retained by hand';
  if (entry.type === 'CreditToppedUp' && entry.source === 'refund') return 'Refund';
  if (entry.type === 'CreditToppedUp' && entry.source !== null && entry.source !== 'manual') return `Top-up (${entry.source})`;
  return ENTRY_LABELS[entry.type as LedgerEntry['type']] ?? entry.type;
}

/**
 * An entry's credits as its ledger line shows them: signed only where the entry moves the
 * balance (the "Balance after" column), + for top-ups and − for charges. Hold entries set credits
 * aside, free them or settle them (the charge itself is the CreditConsumed before a HoldCaptured):
 * the balance stays as it was, so their credits carry no sign.
 */
export function entryCredits(entry: { type: string; credits: string | null }): string {
  if (entry.credits === null) return '';
  return signedCredits(entry.credits, entry.type === 'CreditToppedUp' ? '+' : entry.type === 'CreditConsumed' ? '−' : '');
}

/** A credits amount as the API's pattern has it (up to 16 integer and 6 fractional digits). */
export const CREDITS_INPUT_PATTERN = '[0-9]{1,16}(\\.[0-9]{1,6})?';

/** Two non-negative decimal strings added exactly, digit strings as BigInt (micro-credits). */
export function addDecimal(a: string, b: string): string {
  const micros = (text: string) => {
    const [whole = '0', fraction = ''] = text.split('.');
    return BigInt(whole) * 1_000_000n + BigInt(fraction.padEnd(6, '0').slice(0, 6));
  };
  const sum = micros(a) + micros(b);
  const whole = sum / 1_000_000n;
  const fraction = (sum % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
  return fraction === '' ? whole.toString() : `${whole}.${fraction}`;
}

/** An API key as people know it: the name it was configured with, else its id. */
export function keyLabel(key: { readonly keyId: string; readonly keyName: string | null }): string {
  return key.keyName ?? `key ${key.keyId}`;
}

/**
 * Who asked for a ledger entry's change, as its reader knows them: on the console a key by its
 * name and a customer's own purchase as the portal's; on the portal the customer is "You" and any
 * key is the provider's. Empty where nobody asked (usage, grants, expiries) or nobody was recorded.
 */
export function actorLabel(actor: LedgerEntry['actor'], audience: 'console' | 'portal'): string {
  if (actor === null) return '';
  switch (actor.kind) {
    case 'key':
      return audience === 'console' ? keyLabel(actor) : 'Your provider';
    case 'operator':
      return 'Your provider';
    case 'portal':
      return audience === 'console' ? 'Customer (portal)' : 'You';
    default: {
      const unknown: never = actor;
      return String(unknown);
    }
  }
}
