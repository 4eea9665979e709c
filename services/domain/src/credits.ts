import { InvalidAmountError } from './errors';

/**
 * Credits are exact decimals with at most 6 fractional digits, carried as integer
 * micro-credits in a bigint and written as decimal strings ("12.5"). No float ever
 * holds an amount: a float cannot represent 0.1, and a ledger must add up to the digit.
 */
export type Micros = bigint;

export const CREDIT_SCALE = 6;
export const MICROS_PER_CREDIT = 1_000_000n;
/** Largest magnitude accepted from input: 10^15 credits. Beyond it an amount is a bug or an attack. */
export const MAX_CREDITS: Micros = 10n ** 15n * MICROS_PER_CREDIT;

const CREDITS_PATTERN = /^(-?)(\d{1,16})(?:\.(\d{1,6}))?$/;

export function parseCredits(text: string, field = 'credits'): Micros {
  if (typeof text !== 'string') {
    throw new InvalidAmountError(`${field} must be a decimal string, e.g. "12.5"`);
  }
  const match = CREDITS_PATTERN.exec(text);
  if (!match) {
    throw new InvalidAmountError(
      `${field} must be a decimal string with at most 6 fractional digits, e.g. "12.5"; got ${JSON.stringify(text.slice(0, 40))}`,
    );
  }
  const [, sign, whole, fraction = ''] = match;
  const magnitude = BigInt(whole!) * MICROS_PER_CREDIT + BigInt(fraction.padEnd(CREDIT_SCALE, '0'));
  if (magnitude > MAX_CREDITS) {
    throw new InvalidAmountError(`${field} exceeds the largest accepted amount (10^15 credits)`);
  }
  return sign === '-' ? -magnitude : magnitude;
}

/** Below 10^31 credits: a running balance can outgrow the input limit, but not this. */
const STORED_CREDITS_PATTERN = /^(-?)(\d{1,31})(?:\.(\d{1,6}))?$/;

/**
 * Reads an amount the ledger wrote itself. Only input is limited to 10^15 credits: a
 * balance is a running sum that many top-ups or usages can take past it, and a stored
 * event must stay readable, or its whole stream could never be loaded again.
 */
export function parseStoredCredits(text: string, field = 'stored amount'): Micros {
  const match = typeof text === 'string' ? STORED_CREDITS_PATTERN.exec(text) : null;
  if (!match) {
    throw new InvalidAmountError(`${field} is not a decimal string with at most 6 fractional digits`);
  }
  const [, sign, whole, fraction = ''] = match;
  const magnitude = BigInt(whole!) * MICROS_PER_CREDIT + BigInt(fraction.padEnd(CREDIT_SCALE, '0'));
  return sign === '-' ? -magnitude : magnitude;
}

export function parsePositiveCredits(text: string, field = 'credits'): Micros {
  const value = parseCredits(text, field);
  if (value <= 0n) throw new InvalidAmountError(`${field} must be greater than 0`);
  return value;
}

export function parseNonNegativeCredits(text: string, field = 'credits'): Micros {
  const value = parseCredits(text, field);
  if (value < 0n) throw new InvalidAmountError(`${field} must not be negative`);
  return value;
}

/** Shortest decimal string: 12500000n → "12.5", 0n → "0", -250000n → "-0.25". */
/** Micro-credits a double holds exactly (2^53 - 1): about 9 billion credits. */
const MAX_SAFE_MICROS = BigInt(Number.MAX_SAFE_INTEGER);

export function formatCredits(micros: Micros): string {
  const negative = micros < 0n;
  const magnitude = negative ? -micros : micros;
  if (magnitude <= MAX_SAFE_MICROS) {
    // In doubles, exactly (integers below 2^53; % and the division of an exact multiple are
    // exact): no bigint division, padding or regular expression for every amount the ledger
    // writes. Larger amounts take the bigint path below.
    const units = Number(magnitude);
    let fraction = units % 1_000_000;
    const whole = (units - fraction) / 1_000_000;
    if (fraction === 0) return negative ? `-${whole}` : `${whole}`;
    let digits = CREDIT_SCALE;
    while (fraction % 10 === 0) {
      fraction /= 10;
      digits -= 1;
    }
    return `${negative ? '-' : ''}${whole}.${String(fraction).padStart(digits, '0')}`;
  }
  const whole = magnitude / MICROS_PER_CREDIT;
  const fraction = (magnitude % MICROS_PER_CREDIT).toString().padStart(CREDIT_SCALE, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** formatCredits of an amount that may be absent (a threshold, an override): null stays null. */
export const formatNullableCredits = (micros: Micros | null): string | null => (micros === null ? null : formatCredits(micros));
