/**
 * Scenario 4: the projector and the API, each its own main-job process, are killed with SIGKILL
 * mid-load and restarted, while a third process keeps metering. The projector must resume from
 * its checkpoint without skipping or re-applying an event; top-ups whose answer died with the
 * API are retried with their Idempotency-Key and must count once.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { waitFor } from '@tally/test-support';
import { startBackgroundLoad } from './backgroundLoad';
import { faultScale } from './faultScale';
import { createFaultWorld, type FaultWorld, type ManagedTally } from './faultWorld';
import { finishScenario } from './finishScenario';
import { createUsageTraffic } from './usageTraffic';

const CUSTOMERS = Array.from({ length: 20 }, (_, i) => `readside-customer-${i}`);
/** Top-ups sent at once just before an API kill, so that some are in flight when it dies. */
const BURST = 6;

describe('fault: projector and API SIGKILL', () => {
  let world: FaultWorld | undefined;

  afterAll(async () => {
    await world?.close();
  });

  it('keeps snapshots exact and top-ups counted once across kills of the read side', async () => {
    const startedAt = Date.now();
    const { events, projectorKills, apiKills, topUps: burstTopUps } = faultScale.readSideKills;
    world = await createFaultWorld('read_side');
    const { model, random } = world;
    const projector = await world.startTally('projector', ['projector']);
    const api = await world.startTally('api', ['api']);
    await world.openCatalog(CUSTOMERS);
    await world.startTally('consumer', ['consumer']);
    const traffic = createUsageTraffic({ model, random, customers: CUSTOMERS, idPrefix: 'readside' });
    const kills = [...Array<'projector'>(projectorKills).fill('projector'), ...Array<'api'>(apiKills).fill('api')];
    // Spread the events over the kills: the load publishes a tick every 500 ms.
    const load = startBackgroundLoad(world, traffic, {
      eventsPerTick: Math.max(5, Math.ceil(events / (kills.length * 6))),
      topUpPrefix: 'readside-topup',
    });
    const balances = model.balances();
    const recoveriesMs: number[] = [];
    const differences: string[] = [];
    const injected = { projectorSigkill: 0, apiSigkill: 0 };
    let burstSent = 0;

    const burst = () =>
      Promise.all(
        Array.from({ length: Math.min(BURST, burstTopUps - burstSent) }, () => {
          burstSent += 1;
          const balance = random.pick(balances);
          const key = `readside-burst-${burstSent}`;
          const credits = `${random.int(1, 3)}.${random.int(0, 99)}`;
          model.topUp(balance.balanceId, key, credits);
          return world!.api.topUp(balance.balanceId, credits, key);
        }),
      );
    const killAndRestart = async (target: ManagedTally, recovered: () => Promise<boolean>) => {
      const killedAt = Date.now();
      await target.kill('SIGKILL');
      await target.restart();
      await waitFor(recovered, { description: `${target.label} recovered`, timeoutMs: 120_000, intervalMs: 50 });
      recoveriesMs.push(Date.now() - killedAt);
    };

    try {
      for (const victim of random.shuffle(kills)) {
        // A random moment of steady load.
        await delay(random.int(500, 3000));
        if (victim === 'projector') {
          injected.projectorSigkill += 1;
          // Recovered when the restarted projector has caught up with everything written before it restarted.
          let headAtRestart: bigint | undefined;
          await killAndRestart(projector, async () => {
            headAtRestart ??= await world!.eventStore.headPosition();
            return ((await world!.readModel.servedCheckpoint()) ?? -1n) >= headAtRestart;
          });
        } else {
          injected.apiSigkill += 1;
          const inFlight = burst();
          // Awaited after the restart; until then a failure must not count as unhandled.
          inFlight.catch(() => undefined);
          await delay(random.int(0, 40));
          await killAndRestart(api, async () => (await world!.api.getBalance(balances[0]!.balanceId)).status === 200);
          await inFlight;
        }
      }
    } catch (error) {
      differences.push(`stopped after ${recoveriesMs.length} recoveries: ${String(error)}`);
    }
    const { published, topUps, failure } = await load.stop();
    if (failure !== undefined) differences.push(failure);

    const retried = world.api.retried();
    const report = await finishScenario(world, {
      scenario: 'read-side-sigkill',
      startedAt,
      events: { ...traffic.stats(), published, topUps: topUps + burstSent },
      faults: injected,
      recoveriesMs,
      differences: [...differences, ...(retried['500'] === undefined ? [] : [`the API answered 500 to ${retried['500']} top-up attempts`])],
      extra: { apiRetries: retried },
    });
    expect(report.firstDifferences).toEqual([]);
    expect(report.differences).toBe(0);
  });
});
