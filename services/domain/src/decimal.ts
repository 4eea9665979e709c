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

/** Parses a finite decimal number or numeric string exactly; undefined when it is not one. */
export function toExactDecimal(value: number | string): ExactDecimal | undefined {
  if (typeof value === 'number' && !Number.isFinite(value)) return undefined;
  const text = typeof value === 'number' ? String(value) : value.trim();
  if (text.length === 0 || text.length > 64) return undefined;
  const match = DECIMAL_PATTERN.exec(text);
  if (!match) return undefined;
  const [, sign, whole, fraction = '', exponentText = '0'] = match;
  const exponent = Number(exponentText);
  let digits = BigInt(`${whole}${fraction}`);
  let scale = fraction.length - exponent;
  if (scale < 0) {
    if (-scale > MAX_SCALE) return undefined;
    digits *= 10n ** BigInt(-scale);
    scale = 0;
  }
  if (scale > MAX_SCALE) return undefined;
  return { digits: sign === '-' ? -digits : digits, scale };
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
