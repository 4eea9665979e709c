/**
 * An exact decimal as digits × 10^-scale. Quantities arrive as JSON or Avro numbers
 * (doubles) or as strings; we take a number's shortest round-trip text ("1.1", not
 * 1.100000000000000088817841970012523) as the value the producer meant.
 */
export interface ExactDecimal {
  readonly digits: bigint;
  readonly scale: number;
}

const DECIMAL_PATTERN = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;
const MAX_SCALE = 40;

/** Why a value is not read as an exact decimal (readExactDecimal). */
export type ExactDecimalProblem =
  /** Not a finite number, nor a decimal numeral (of at most 64 characters). */
  | 'not_a_number'
  /** A non-zero digit more than MAX_SCALE places after the point (5e-324, say). */
  | 'more_than_40_fractional_digits'
  /** More than MAX_SCALE digits before the point (1e41 and up). */
  | 'too_large';

/** Parses a finite decimal number or numeric string exactly; or says why it cannot. */
export function readExactDecimal(value: number | string): ExactDecimal | ExactDecimalProblem {
  if (typeof value === 'number' && !Number.isFinite(value)) return 'not_a_number';
  const text = typeof value === 'number' ? String(value) : value.trim();
  if (text.length === 0 || text.length > 64) return 'not_a_number';
  const match = DECIMAL_PATTERN.exec(text);
  if (!match) return 'not_a_number';
  const [, sign, whole, fraction = '', exponentText = '0'] = match;
  let digits = BigInt(`${whole}${fraction}`);
  let scale = fraction.length - Number(exponentText);
  // Zero has no digit at any scale: "0e50" and "0.0e-45" are 0, not out of range; a zero written
  // at a scale in range keeps it, as any other amount does ("0.00" is a price in cents).
  if (digits === 0n) return { digits: 0n, scale: scale >= 0 && scale <= MAX_SCALE ? scale : 0 };
  if (scale < 0) {
    if (-scale > MAX_SCALE) return 'too_large';
    digits *= 10n ** BigInt(-scale);
    scale = 0;
  }
  // Trailing zeros past the supported scale are not digits of the value ("1.000…0" is 1).
  while (scale > MAX_SCALE && digits % 10n === 0n) {
    digits /= 10n;
    scale -= 1;
  }
  if (scale > MAX_SCALE) return 'more_than_40_fractional_digits';
  return { digits: sign === '-' ? -digits : digits, scale };
}

/** Parses a finite decimal number or numeric string exactly; undefined when it is not one (readExactDecimal says why). */
export function toExactDecimal(value: number | string): ExactDecimal | undefined {
  const read = readExactDecimal(value);
  return typeof read === 'string' ? undefined : read;
}

export function formatExactDecimal({ digits, scale }: ExactDecimal): string {
  if (scale === 0) return digits.toString();
  const negative = digits < 0n;
  const text = (negative ? -digits : digits).toString().padStart(scale + 1, '0');
  const whole = text.slice(0, text.length - scale);
  const fraction = text.slice(text.length - scale).replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** Integer division of a non-negative numerator, rounding half up. */
export function divideRoundHalfUp(numerator: bigint, denominator: bigint): bigint {
  return (numerator * 2n + denominator) / (denominator * 2n);
}
