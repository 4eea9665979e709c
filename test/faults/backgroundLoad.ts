import { setTimeout as delay } from 'node:timers/promises';
import type { ModelBalance } from './creditModel';
import type { FaultWorld } from './faultWorld';
import type { UsageTraffic } from './usageTraffic';

export interface BackgroundLoad {
  /** Ends both loops after their current step (which may be a retry through an outage) and reports. */
  stop(): Promise<{ readonly published: number; readonly topUps: number; readonly failure?: string }>;
}

/**
 * Usage events and API top-ups at a steady pace while faults come and go: publishing retries
 * a chunk through a broker outage, a top-up retries with its Idempotency-Key until it is stored,
 * so every write the model records does reach Tally, however late. An error that is not a
 * transient failure (or a retry past its deadline) ends both loops; stop() reports it.
 */
export function startBackgroundLoad(
  world: FaultWorld,
  traffic: UsageTraffic,
  {
    eventsPerTick,
    tickMs = 500,
    topUpEveryMs = 400,
    topUpPrefix,
    balances = world.model.balances(),
  }: {
    eventsPerTick: number;
    tickMs?: number;
    topUpEveryMs?: number;
    topUpPrefix: string;
    /** The balances top-ups go to; all of them by default. */
    balances?: readonly ModelBalance[];
  },
): BackgroundLoad {
  const { model, random } = world;
  let running = true;
  let published = 0;
  let topUps = 0;
  let failure: unknown;
  // A failed loop stops both, and stop() reports why: never an unhandled rejection mid-scenario.
  const guard = (loop: Promise<void>) =>
    loop.catch((error: unknown) => {
      failure ??= error;
      running = false;
    });

  const publishing = guard((async () => {
    while (running) {
      const messages = traffic.next(eventsPerTick);
      await world.publish(messages);
      published += messages.length;
      await delay(tickMs);
    }
  })());
  const toppingUp = guard((async () => {
    while (running) {
      const balance = random.pick(balances);
      const key = `${topUpPrefix}-${topUps + 1}`;
      const credits = `${random.int(0, 5)}.${random.int(1, 999_999)}`;
      // Recorded before the first attempt: from here on the client retries until it is stored.
      model.topUp(balance.balanceId, key, credits);
      topUps += 1;
      await world.api.topUp(balance.balanceId, credits, key, 240_000);
      await delay(topUpEveryMs);
    }
  })());

  return {
    async stop() {
      running = false;
      await Promise.all([publishing, toppingUp]);
      return { published, topUps, ...(failure === undefined ? {} : { failure: `the background load stopped: ${String(failure)}` }) };
    },
  };
}
