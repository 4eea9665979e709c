import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { waitFor } from '@tally/test-support';
import { compareWithModel } from './compareWithModel';
import { faultScale } from './faultScale';
import { recordFaultReport, summarizeRecovery, type FaultReport } from './faultReport';
import type { FaultWorld } from './faultWorld';
import { waitWhileProgressing } from './waitWhileProgressing';

export interface ScenarioOutcome {
  readonly scenario: string;
  readonly startedAt: number;
  readonly events: Readonly<Record<string, number>>;
  readonly faults: Readonly<Record<string, number>>;
  readonly recoveriesMs: readonly number[];
  /** Differences the scenario found itself (a 5xx, a message missing from the DLQ, ...). */
  readonly differences?: readonly string[];
  readonly extra?: Readonly<Record<string, unknown>>;
}

/**
 * Waits until every usage charge the model expects is stored and the projection has caught up
 * with the event store, then compares everything with the model and records the report. A wait
 * that runs out is not thrown: what is missing then shows up as differences in the report.
 */
export async function finishScenario(world: FaultWorld, outcome: ScenarioOutcome): Promise<FaultReport> {
  const expected = world.model.chargeCount();
  const waits: string[] = [];
  await waitWhileProgressing(`${expected} usage charges stored`, async () => {
    const count = await world.consumedCount();
    return { done: count >= expected, mark: String(count), detail: `${count} stored` };
  }).catch((error: unknown) => waits.push(String(error)));
  const head = await world.eventStore.headPosition();
  await waitFor(async () => ((await world.readModel.servedCheckpoint()) ?? -1n) >= head, {
    description: `the projection at position ${head}`,
    timeoutMs: 120_000,
    intervalMs: 250,
  }).catch((error: unknown) => waits.push(String(error)));

  const comparison = await compareWithModel(world);
  const differences = [
    ...comparison.differences,
    ...world.unexpectedExits().map((exit) => `crash: ${exit}`),
    ...(outcome.differences ?? []),
  ];
  const report: FaultReport = {
    scenario: outcome.scenario,
    scale: faultScale.name,
    seed: world.random.seed,
    events: { ...outcome.events, balances: comparison.balances, usageCharges: comparison.usageCharges, ledgerEvents: comparison.ledgerEvents },
    faults: outcome.faults,
    faultsInjected: Object.values(outcome.faults).reduce((sum, count) => sum + count, 0),
    recovery: summarizeRecovery(outcome.recoveriesMs),
    differences: differences.length,
    firstDifferences: [...waits, ...differences].slice(0, 10),
    durationMs: Date.now() - outcome.startedAt,
    logs: world.logDir,
    ...outcome.extra,
  };
  recordFaultReport(report);
  if (differences.length > 0) {
    // The report keeps ten; the whole list goes beside the processes' logs.
    mkdirSync(world.logDir, { recursive: true });
    writeFileSync(path.join(world.logDir, 'differences.txt'), `${[...waits, ...differences].join('\n')}\n`);
  }
  return report;
}
