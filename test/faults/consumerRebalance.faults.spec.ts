/**
 * Scenario 2: three consumer processes in one group, scaled 1 → 3 → 1 (and again at full
 * scale) while usage keeps arriving: every scale step is a rebalance that moves partitions,
 * with batches in hand, between processes.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { waitFor } from '@tally/test-support';
import { faultScale } from './faultScale';
import { createFaultWorld, type FaultWorld, type ManagedTally } from './faultWorld';
import { finishScenario } from './finishScenario';
import { createUsageTraffic } from './usageTraffic';

const CUSTOMERS = Array.from({ length: 30 }, (_, i) => `rebalance-customer-${i}`);

describe('fault: consumer group rebalances', () => {
  let world: FaultWorld | undefined;

  afterAll(async () => {
    await world?.close();
  });

  it(`stays exact while the group is scaled 1 → 3 → 1, ${faultScale.rebalance.cycles} time(s)`, async () => {
    const startedAt = Date.now();
    const { events, cycles } = faultScale.rebalance;
    world = await createFaultWorld('rebalance');
    const { model, random } = world;
    await world.startTally('read-side', ['projector', 'api']);
    await world.openCatalog(CUSTOMERS);
    const traffic = createUsageTraffic({ model, random, customers: CUSTOMERS, idPrefix: 'rebalance' });
    const balances = model.balances();
    const slice = Math.ceil(events / (2 * cycles + 1));
    const differences: string[] = [];
    const recoveriesMs: number[] = [];
    let topUps = 0;
    let rebalances = 0;

    const groupOf = async (members: number) => {
      const { groups } = await world!.admin.describeGroups([world!.groupId]);
      return groups[0]?.state === 'Stable' && groups[0].members.length === members;
    };
    /** A scale step has recovered once the group is stable at its new size and everything published so far is metered. */
    const recovered = async (members: number, since: number | undefined) => {
      await waitFor(() => groupOf(members), { description: `a stable group of ${members}`, timeoutMs: 120_000, intervalMs: 100 });
      await waitFor(async () => (await world!.consumedCount()) >= model.chargeCount(), {
        description: `metering caught up with ${members} members`,
        timeoutMs: 120_000,
        intervalMs: 50,
      });
      if (since === undefined) return;
      recoveriesMs.push(Date.now() - since);
      rebalances += 1;
    };
    const topUpSome = async (count: number) => {
      for (let i = 0; i < count; i += 1) {
        topUps += 1;
        const balance = random.pick(balances);
        const credits = `${random.int(1, 9)}.${random.int(0, 99)}`;
        await world!.api.topUp(balance.balanceId, credits, `rebalance-topup-${topUps}`);
        model.topUp(balance.balanceId, `rebalance-topup-${topUps}`, credits);
      }
    };

    // A recovery that never comes ends the steps but not the scenario: the report shows what is missing.
    let first: ManagedTally | undefined;
    try {
      await world.publish(traffic.next(slice));
      first = await world.startTally('consumer-1', ['consumer']);
      // The first join is not a fault: it is measured from nothing.
      await recovered(1, undefined);
      for (let cycle = 0; cycle < cycles; cycle += 1) {
        await world.publish(traffic.next(slice));
        const scaledUpAt = Date.now();
        const added: ManagedTally[] = await Promise.all([world.startTally(`consumer-2-${cycle}`, ['consumer']), world.startTally(`consumer-3-${cycle}`, ['consumer'])]);
        await recovered(3, scaledUpAt);
        await topUpSome(5);
        await world.publish(traffic.next(slice));
        // Scale down while the three share a backlog: the leavers finish and commit their batch in hand.
        await delay(random.int(200, 1500));
        const scaledDownAt = Date.now();
        const exits = await Promise.all(added.map((member) => member.kill('SIGTERM')));
        exits.forEach((code, index) => {
          if (code !== 0) differences.push(`${added[index]!.label} exited with ${code} on SIGTERM, not 0`);
        });
        await recovered(1, scaledDownAt);
        await topUpSome(5);
      }
    } catch (error) {
      differences.push(`stopped after ${rebalances} rebalances: ${String(error)}`);
    }

    const report = await finishScenario(world, {
      scenario: 'consumer-rebalance',
      startedAt,
      events: { ...traffic.stats(), topUps },
      faults: { rebalance: rebalances },
      recoveriesMs,
      differences,
    });
    expect(await first?.kill('SIGTERM')).toBe(0);
    expect(report.firstDifferences).toEqual([]);
    expect(report.differences).toBe(0);
  });
});
