import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface RecoverySummary {
  readonly samples: number;
  readonly p50Ms: number;
  readonly maxMs: number;
}

export interface FaultReport {
  readonly scenario: string;
  readonly scale: string;
  /** Replays the run's random choices: TALLY_FAULTS_SEED=<seed>. */
  readonly seed: number;
  readonly events: Readonly<Record<string, number>>;
  /** Faults injected, by kind. */
  readonly faults: Readonly<Record<string, number>>;
  readonly faultsInjected: number;
  /** From each fault's end (or the kill) until Tally demonstrably works again; null when not measured. */
  readonly recovery: RecoverySummary | null;
  /** Must be 0. */
  readonly differences: number;
  /** The first few differences, to start debugging from. */
  readonly firstDifferences: readonly string[];
  readonly durationMs: number;
  readonly [extra: string]: unknown;
}

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const RESULTS_DIR = path.join(REPO_ROOT, 'bench-results');

export function summarizeRecovery(samplesMs: readonly number[]): RecoverySummary | null {
  if (samplesMs.length === 0) return null;
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return { samples: sorted.length, p50Ms: Math.round(sorted[Math.floor((sorted.length - 1) / 2)]!), maxMs: Math.round(sorted[sorted.length - 1]!) };
}

/**
 * Prints the scenario's one-line JSON report (before any assertion, so a failing run reports
 * too) and appends it to bench-results/faults-<UTC date>.json, the file the figures
 * come from. Jest runs the suite in band, so the read-modify-write has no concurrent writer.
 */
export function recordFaultReport(report: FaultReport): void {
  // One suite run's reports share its run id (set by scripts/test-faults.sh); the day's file holds every run.
  const line = JSON.stringify({ ...report, run: process.env.TALLY_FAULTS_RUN ?? 'manual', at: new Date().toISOString() });
  process.stdout.write(`FAULT REPORT ${line}\n`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `faults-${new Date().toISOString().slice(0, 10)}.json`);
  let reports: unknown[] = [];
  try {
    reports = JSON.parse(readFileSync(file, 'utf8')) as unknown[];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  reports.push(JSON.parse(line));
  writeFileSync(file, `${JSON.stringify(reports, null, 2)}\n`);
}
