/**
 * Scenario 1: the metering consumer is killed with SIGKILL at random moments while it works
 * through a backlog, and restarted each time. No stop(), no commit: whatever it had appended but
 * not committed is redelivered to its successor, which must find it stored and not charge again.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { waitFor } from '@tally/test-support';
import { faultScale } from './faultScale';
import { createFaultWorld, type FaultWorld } from './faultWorld';
import { finishScenario } from './finishScenario';
import { createUsageTraffic } from './usageTraffic';

const CUSTOMERS = Array.from({ length: 24 }, (_, i) => `kill-customer-${i}`);

describe('fault: consumer SIGKILL', () => {
  let world: FaultWorld | undefined;

  afterAll(async () => {
    await world?.close();
  });

  it(`meters every usage event exactly once across ${faultScale.consumerKills.kills} kills and restarts`, async () => {
    const startedAt = Date.now();
    const { events, kills } = faultScale.consumerKills;
    world = await createFaultWorld('consumer_kills');
    const { model, random } = world;
    await world.startTally('read-side', ['projector', 'api']);
    await world.openCatalog(CUSTOMERS);
    const traffic = createUsageTraffic({ model, random, customers: CUSTOMERS, idPrefix: 'kill' });
    const balances = model.balances();

    const consumer = await world.startTally('consumer', ['consumer']);
    const perRound = Math.ceil(events / kills);
    const recoveriesMs: number[] = [];
    let topUps = 0;
    let killed = 0;
    let killsWithBacklog = 0;
    const caughtUp = async () => (await world!.consumedCount()) >= model.chargeCount();

    // A recovery that never comes ends the rounds but not the scenario: the report then shows
    // what is missing.
    const differences: string[] = [];
    try {
      for (let round = 0; round < kills; round += 1) {
        const progressFrom = await world.consumedCount();
        await world.publish(traffic.next(perRound));
        // API writes on the same balances meanwhile: the consumer's appends meet revision conflicts.
        for (let i = 0; i < 2; i += 1) {
          topUps += 1;
          const balance = random.pick(balances);
          const credits = `${random.int(1, 20)}.${random.int(0, 999_999)}`;
          await world.api.topUp(balance.balanceId, credits, `kill-topup-${topUps}`);
          model.topUp(balance.balanceId, `kill-topup-${topUps}`, credits);
        }
        await waitFor(async () => (await world!.consumedCount()) > progressFrom, {
          description: `the consumer metering round ${round + 1}`,
          timeoutMs: 120_000,
          intervalMs: 20,
        });
        // A random moment while the round is metered (a batch decided, appending, or committing);
        // a round takes well under a second, so later would mostly hit an idle consumer.
        await delay(random.int(0, 250));
        const killedAt = Date.now();
        await consumer.kill('SIGKILL');
        killed += 1;
        if (!(await caughtUp())) killsWithBacklog += 1;
        await consumer.restart();
        // Recovered once everything published so far is metered: the successor has waited out the
        // dead member's session, taken the partitions and redone the uncommitted batches.
        await waitFor(caughtUp, { description: `metering caught up after kill ${round + 1}`, timeoutMs: 180_000, intervalMs: 100 });
        recoveriesMs.push(Date.now() - killedAt);
      }
    } catch (error) {
      differences.push(`stopped after ${recoveriesMs.length} recoveries: ${String(error)}`);
    }

    const report = await finishScenario(world, {
      scenario: 'consumer-sigkill',
      startedAt,
      events: { ...traffic.stats(), topUps },
      faults: { consumerSigkill: killed },
      recoveriesMs,
      differences,
      extra: { killsWithBacklog },
    });
    expect(report.firstDifferences).toEqual([]);
    expect(report.differences).toBe(0);
  });
});
