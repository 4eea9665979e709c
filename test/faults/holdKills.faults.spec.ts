/**
 * Scenario: holds (issue 15) under SIGKILLs. Rounds of concurrent holds race for the same
 * balances through the API, each granted hold then captured (in full or in part), released or
 * left to expire, while the API process and the scheduler processes (which expire holds, one at a
 * time by a lease) are killed with SIGKILL and restarted. Clients retry with the same
 * Idempotency-Key (placements) or the same request (captures, releases) until a definitive answer.
 * At the end every hold has ended, and the ledger, the snapshots and the API must agree with what
 * the clients were told: no hold past −overdraftLimit, each freed once, expiries not early.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { balanceStreamId, formatCredits, parseCredits, parseStoredCredits } from '@tally/domain';
import { waitFor } from '@tally/test-support';
import { faultScale } from './faultScale';
import { createFaultWorld, type FaultWorld, type ManagedTally } from './faultWorld';
import { finishScenario } from './finishScenario';
import type { ModelHold } from './creditModel';
import { waitWhileProgressing } from './waitWhileProgressing';

const CUSTOMERS = Array.from({ length: 6 }, (_, i) => `holds-customer-${i}`);
/** Holds expire within seconds, so the expiry worker has work throughout the kills. */
const EXPIRY_SECONDS = { min: 1, max: 4 };

describe('fault: holds under API and scheduler SIGKILL', () => {
  let world: FaultWorld | undefined;

  afterAll(async () => {
    await world?.close();
  });

  it('grants, captures, releases and expires every hold exactly once across kills', async () => {
    const startedAt = Date.now();
    const { rounds, holdsPerRound, apiKills, schedulerKills } = faultScale.holds;
    world = await createFaultWorld('holds');
    const { model, random, api } = world;
    await world.startTally('projector', ['projector']);
    const apiProcess = await world.startTally('api', ['api']);
    const schedulers = [await world.startTally('scheduler-a', ['scheduler']), await world.startTally('scheduler-b', ['scheduler'])];
    await world.openCatalog(CUSTOMERS);
    // The compute balances (100 credits each) take the holds; half of them may go 20 below zero.
    const balances = model.balances().filter((balance) => balance.productId === 'compute');
    for (const [index, balance] of balances.entries()) {
      if (index % 2 === 1) continue;
      const response = await api.request({ method: 'PATCH', path: `/v1/credit-balances/${balance.balanceId}`, body: { overdraftLimit: '20' } });
      if (response.status !== 200) throw new Error(`PATCH overdraftLimit answered ${response.status}`);
    }

    const recoveriesMs: number[] = [];
    const differences: string[] = [];
    const injected = { apiSigkill: 0, schedulerSigkill: 0 };
    const outcomes = { granted: 0, refused: 0, captured: 0, partial: 0, released: 0, notOpen: 0, left: 0 };
    let running = true;

    /** One hold's life: placed (retried with its key until 201 or 402), then one of capture, partial capture, release, or nothing. */
    async function holdOnce(balanceId: string, key: string): Promise<void> {
      const credits = `${random.int(5, 30)}.${random.int(0, 999_999)}`;
      const placed = await api.placeHold(balanceId, key, { credits, expiresInSeconds: random.int(EXPIRY_SECONDS.min, EXPIRY_SECONDS.max) }, 240_000);
      const holdId = `${balanceId}:${key}`;
      model.placeHold(balanceId, holdId, parseCredits(credits), placed.status === 201 ? 'granted' : 'refused');
      if (placed.status !== 201) {
        outcomes.refused += 1;
        return;
      }
      outcomes.granted += 1;
      if ((placed.body as { id?: string }).id !== holdId) differences.push(`hold ${key} answered id ${(placed.body as { id?: string }).id}`);
      const action = random.pick(['capture', 'partial', 'release', 'leave'] as const);
      if (action === 'leave') {
        model.endHold(balanceId, holdId, { by: 'left' });
        outcomes.left += 1;
        return;
      }
      // Some before the expiry, some racing it.
      await delay(random.int(0, EXPIRY_SECONDS.max * 1000));
      const charge = action === 'partial' ? `${random.int(1, 4)}.${random.int(0, 999_999)}` : undefined;
      const response = await api.endHold(holdId, action === 'release' ? 'release' : 'capture', charge === undefined ? {} : { credits: charge }, 240_000);
      let ended: NonNullable<ModelHold['ended']>;
      if (response.status === 409) {
        ended = { by: 'not_open' };
        outcomes.notOpen += 1;
      } else if (action === 'release') {
        ended = { by: 'released' };
        outcomes.released += 1;
      } else {
        ended = { by: 'captured', credits: parseStoredCredits((response.body as { captured: string }).captured) };
        if (charge !== undefined && ended.credits !== parseCredits(charge)) differences.push(`hold ${holdId} captured ${formatCredits(ended.credits)}, asked ${charge}`);
        outcomes[action === 'partial' ? 'partial' : 'captured'] += 1;
      }
      model.endHold(balanceId, holdId, ended);
    }

    const traffic = (async () => {
      for (let round = 0; round < rounds && running; round += 1) {
        // Every hold of a round on one balance, at once: they race for its last credits.
        const balance = random.pick(balances);
        await Promise.all(Array.from({ length: holdsPerRound }, (_, index) => holdOnce(balance.balanceId, `r${round}-h${index}`)));
      }
    })().catch((error: unknown) => {
      differences.push(`the hold traffic stopped: ${String(error)}`);
    });

    const killAndRestart = async (target: ManagedTally, recovered: () => Promise<boolean>) => {
      const killedAt = Date.now();
      await target.kill('SIGKILL');
      await target.restart();
      await waitFor(recovered, { description: `${target.label} recovered`, timeoutMs: 120_000, intervalMs: 50 });
      recoveriesMs.push(Date.now() - killedAt);
    };
    const kills = random.shuffle([...Array<'api'>(apiKills).fill('api'), ...Array<'scheduler'>(schedulerKills).fill('scheduler')]);
    try {
      for (const victim of kills) {
        await delay(random.int(500, 3000));
        if (victim === 'api') {
          injected.apiSigkill += 1;
          await killAndRestart(apiProcess, async () => (await api.getBalance(balances[0]!.balanceId)).status === 200);
        } else {
          injected.schedulerSigkill += 1;
          // Either one: the leader (then the standby takes over) or the standby.
          await killAndRestart(random.pick(schedulers), async () => true);
        }
      }
    } catch (error) {
      differences.push(`stopped after ${recoveriesMs.length} recoveries: ${String(error)}`);
    }
    await traffic;
    running = false;

    // Every hold ends: the last ones expire within EXPIRY_SECONDS.max of their placement.
    await waitWhileProgressing('every hold freed', async () => {
      const streams = await world!.eventStore.readStreams(balances.map((balance) => balanceStreamId(balance.balanceId)));
      let open = 0;
      for (const events of streams.values()) {
        const placed = events.filter((event) => event.type === 'CreditsHeld').length;
        const freed = events.filter((event) => ['HoldCaptured', 'HoldReleased', 'HoldExpired'].includes(event.type)).length;
        open += placed - freed;
      }
      return { done: open === 0, mark: String(open), detail: `${open} holds open` };
    }).catch((error: unknown) => differences.push(String(error)));

    const report = await finishScenario(world, {
      scenario: 'holds-sigkill',
      startedAt,
      events: { holds: outcomes.granted + outcomes.refused, ...outcomes },
      faults: injected,
      recoveriesMs,
      differences: [...differences, ...(api.retried()['500'] === undefined ? [] : [`the API answered 500 to ${api.retried()['500']} attempts`])],
      extra: { apiRetries: api.retried() },
    });
    expect(report.firstDifferences).toEqual([]);
    expect(report.differences).toBe(0);
    // The scenario exercised what it is about.
    expect(outcomes.refused).toBeGreaterThan(0);
    expect(outcomes.granted).toBeGreaterThan(0);
  });
});
