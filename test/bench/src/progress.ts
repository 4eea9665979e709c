import { performance } from 'node:perf_hooks';

const started = performance.now();

/** One progress line on stderr, stamped with the time since the bench started, so stdout keeps only the table. */
export function progress(message: string): void {
  const seconds = (performance.now() - started) / 1000;
  process.stderr.write(`[bench ${seconds.toFixed(1).padStart(6)}s] ${message}\n`);
}

/** 1234567.8 → "1,234,568": figures are read by people, beside ceilings of another magnitude. */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}
