/**
 * Scenario 3: the services under Tally go away and come back while usage and top-ups keep
 * arriving: PostgreSQL stopped for 10 s; Redis stopped, restarted empty and flushed; the Kafka
 * broker stopped and started. One main-job process runs consumer, projector and API throughout
 * and must recover from each by itself. This stops services every other test on the machine
 * uses: the suite runs alone (CI runs it after the main test run).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { formatCredits } from '@tally/domain';
import { waitFor } from '@tally/test-support';
import { startBackgroundLoad } from './backgroundLoad';
import { faultScale } from './faultScale';
import { createFaultWorld, type FaultWorld } from './faultWorld';
import { finishScenario } from './finishScenario';
import { flushRedis, startKafka, startPostgres, startRedis, stopKafka, stopPostgres, stopRedis } from './stackControl';
import { createUsageTraffic, type UsageTraffic } from './usageTraffic';

const CUSTOMERS = Array.from({ length: 20 }, (_, i) => `outage-customer-${i}`);
/** Receives only probe events, so its balance after each probe is known exactly. */
const PROBE_CUSTOMER = 'outage-probe';
/** How long the broker stays down between its stop and its start. */
const KAFKA_DOWN_MS = 5000;

describe('fault: PostgreSQL, Redis and Kafka outages', () => {
  let world: FaultWorld | undefined;
  const down = new Set<'postgres' | 'redis' | 'kafka'>();

  afterAll(async () => {
    // Whatever failed, the shared services come back for everyone else.
    if (down.has('postgres')) await startPostgres();
    if (down.has('redis')) await startRedis();
    if (down.has('kafka')) await startKafka();
    await world?.close();
  });

  it('recovers from each outage by itself and ends exact', async () => {
    const startedAt = Date.now();
    world = await createFaultWorld('outages');
    const { model, random } = world;
    await world.startTally('tally', ['consumer', 'projector', 'api']);
    await world.openCatalog([...CUSTOMERS, PROBE_CUSTOMER]);
    const probeBalance = model.balances().find((balance) => balance.customerId === PROBE_CUSTOMER)!.balanceId;
    const traffic = createUsageTraffic({ model, random, customers: CUSTOMERS, idPrefix: 'outage' });
    const probeTraffic = createUsageTraffic({ model, random, customers: [PROBE_CUSTOMER], idPrefix: 'probe', duplicateRate: 0, replayRate: 0 });
    const load = startBackgroundLoad(world, traffic, {
      eventsPerTick: faultScale.outages.eventsPerTick,
      topUpPrefix: 'outage-topup',
      // Top-ups would move the probe balance between a probe and its check.
      balances: model.balances().filter((balance) => balance.balanceId !== probeBalance),
    });
    const recoveriesMs: number[] = [];
    const timeline: Record<string, number>[] = [];

    /** End to end: a usage event published now shows in the snapshot and through the API. */
    const probe = async (probes: UsageTraffic, since: number): Promise<number> => {
      await world!.publish([probes.nextFor(PROBE_CUSTOMER)]);
      const expected = formatCredits(model.expectedBalance(probeBalance));
      await waitFor(
        async () => {
          if ((await world!.readModel.getBalance(probeBalance))?.balance !== expected) return false;
          const response = await world!.api.getBalance(probeBalance);
          return response.status === 200 && (response.body as { balance?: string }).balance === expected;
        },
        { description: `the probe balance at ${expected}`, timeoutMs: 180_000, intervalMs: 100 },
      );
      return Date.now() - since;
    };
    const outage = async (service: 'postgres' | 'redis' | 'kafka', stop: () => Promise<void>, holdMs: number, start: () => Promise<void>) => {
      // Some load in flight before the outage.
      await probe(probeTraffic, Date.now());
      const stoppedAt = Date.now();
      down.add(service);
      await stop();
      // The outage's length is the fault itself, not a wait for a condition.
      await delay(Math.max(0, holdMs - (Date.now() - stoppedAt)));
      await start();
      down.delete(service);
      const backAt = Date.now();
      if (service === 'redis') await flushRedis();
      const recoveryMs = await probe(probeTraffic, backAt);
      recoveriesMs.push(recoveryMs);
      timeline.push({ [`${service}DownMs`]: backAt - stoppedAt, [`${service}RecoveryMs`]: recoveryMs });
    };

    const differences: string[] = [];
    try {
      await outage('postgres', stopPostgres, faultScale.outages.postgresDownMs, startPostgres);
      await outage('redis', stopRedis, faultScale.outages.redisDownMs, startRedis);
      await outage('kafka', stopKafka, KAFKA_DOWN_MS, startKafka);
    } catch (error) {
      // A recovery that never comes ends the outages but not the scenario: the report shows what is missing.
      differences.push(`stopped after ${recoveriesMs.length} recoveries: ${String(error)}`);
    }
    const { published, topUps, failure } = await load.stop();
    if (failure !== undefined) differences.push(failure);
    const retried = world.api.retried();
    // A dependency outage must answer 503 (retry later), never 500.
    if (retried['500'] !== undefined) differences.push(`the API answered 500 to ${retried['500']} top-up attempts during the outages`);

    const report = await finishScenario(world, {
      scenario: 'service-outages',
      startedAt,
      events: { ...traffic.stats(), probes: probeTraffic.stats().unique, published, topUps },
      faults: { postgresStop: 1, redisRestartFlush: 1, kafkaStop: 1 },
      recoveriesMs,
      differences,
      extra: { timeline, apiRetries: retried },
    });
    expect(report.firstDifferences).toEqual([]);
    expect(report.differences).toBe(0);
  });
});
