/** A batch size from options (a CLI flag may bring NaN), or the default; fails early rather than in the store. */
export function resolveBatchSize(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`batchSize must be a positive integer; got ${value}`);
  return value;
}
