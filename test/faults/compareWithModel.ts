import { balanceStreamId, formatCredits, parseStoredCredits, type Micros } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import type { FaultWorld } from './faultWorld';

export interface Comparison {
  /** Every way the stored ledger, the snapshots or the API disagree with the model; must be empty. */
  readonly differences: readonly string[];
  readonly balances: number;
  readonly ledgerEvents: number;
  readonly usageCharges: number;
}

interface EventData {
  readonly credits?: string;
  readonly balanceAfter?: string;
  readonly balance?: string;
  readonly source?: string;
  readonly usage?: { readonly eventId: string } | null;
}

/**
 * Checks a scenario's end state against its model, from three places: the event store streams
 * (the truth), the Redis snapshots (the projector's output) and the API (`?consistent=true`).
 * Per balance: revisions 0..n with the opening first; every amount-bearing event's balance-after
 * continues the running sum; each usage event charged at most once, every expected one present,
 * at the model's price; each top-up Idempotency-Key once; the final balance equal to the model's.
 */
export async function compareWithModel(world: FaultWorld): Promise<Comparison> {
  const { model, eventStore } = world;
  const differences: string[] = [];
  const balances = model.balances();
  const streams = await eventStore.readStreams(balances.map((balance) => balanceStreamId(balance.balanceId)));
  let ledgerEvents = 0;
  let usageCharges = 0;

  for (const balance of balances) {
    const id = balance.balanceId;
    const say = (text: string) => differences.push(`balance ${id} (${balance.customerId}/${balance.productId}): ${text}`);
    const events: readonly RecordedEvent[] = streams.get(balanceStreamId(id)) ?? [];
    ledgerEvents += events.length;
    if (events[0]?.type !== 'CreditBalanceOpened') say(`the stream starts with ${events[0]?.type ?? 'nothing'}, not CreditBalanceOpened`);
    let running: Micros = 0n;
    const charged = new Map<string, Micros>();
    const topUpKeys = new Set<string>();
    events.forEach((event, index) => {
      if (event.revision !== BigInt(index)) say(`event ${event.id} has revision ${event.revision}, expected ${index}`);
      const data = event.data as EventData;
      const after = (field: 'balanceAfter' | 'balance') => {
        const stated = data[field] === undefined ? undefined : parseStoredCredits(data[field]);
        if (stated !== running) say(`${event.type} at revision ${index} states ${field} ${data[field]}, the chain gives ${formatCredits(running)}`);
      };
      switch (event.type) {
        case 'CreditToppedUp':
          running += parseStoredCredits(data.credits ?? '');
          after('balanceAfter');
          if (data.source === 'manual') {
            const causation = String((event.metadata as { causationId?: unknown }).causationId ?? '');
            const key = causation.slice(causation.indexOf(`:${id}:`) + id.length + 2);
            if (topUpKeys.has(key)) say(`top-up key ${key} applied twice`);
            topUpKeys.add(key);
            const expected = balance.topUps.get(key);
            if (expected === undefined) say(`top-up ${key} is not one the test made`);
            else if (expected !== parseStoredCredits(data.credits ?? '')) say(`top-up ${key} of ${data.credits}, the test sent ${formatCredits(expected)}`);
          }
          break;
        case 'CreditConsumed': {
          const credits = parseStoredCredits(data.credits ?? '');
          running -= credits;
          after('balanceAfter');
          const usageId = data.usage?.eventId;
          if (data.source !== 'usage' || usageId === undefined) {
            say(`a CreditConsumed at revision ${index} that is not usage (source ${data.source})`);
            break;
          }
          usageCharges += 1;
          if (charged.has(usageId)) say(`usage event ${usageId} charged twice`);
          charged.set(usageId, credits);
          const expected = balance.usage.get(usageId);
          if (expected === undefined) say(`usage event ${usageId} charged, but the model does not charge it here`);
          else if (expected !== credits) say(`usage event ${usageId} charged ${formatCredits(credits)}, the model says ${formatCredits(expected)}`);
          break;
        }
        case 'LowBalanceWarned':
        case 'CreditBalanceDepleted':
          after('balance');
          break;
        default:
          break;
      }
    });
    for (const usageId of balance.usage.keys()) if (!charged.has(usageId)) say(`usage event ${usageId} was never charged (lost)`);
    for (const key of balance.topUps.keys()) if (!topUpKeys.has(key)) say(`top-up ${key} is missing`);
    const expected = model.expectedBalance(id);
    if (running !== expected) say(`the ledger ends at ${formatCredits(running)}, the model at ${formatCredits(expected)}`);

    const snapshot = await world.readModel.getBalance(id);
    const last = events[events.length - 1];
    if (snapshot === undefined) say('no Redis snapshot');
    else {
      if (snapshot.balance !== formatCredits(expected)) say(`the Redis snapshot holds ${snapshot.balance}, the model ${formatCredits(expected)}`);
      if (last !== undefined && snapshot.revision !== String(last.revision)) say(`the Redis snapshot is at revision ${snapshot.revision}, the stream at ${last.revision}`);
    }
    const response = await world.api.getBalance(id, { consistent: true });
    const served = (response.body as { balance?: string }).balance;
    if (response.status !== 200 || served !== formatCredits(expected)) {
      say(`the API answers ${response.status} ${served ?? JSON.stringify(response.body)}, the model ${formatCredits(expected)}`);
    }
  }

  const { rows } = await world.db.pool.query<{ stream_id: string }>('SELECT stream_id FROM streams');
  const known = new Set(balances.map((balance) => balanceStreamId(balance.balanceId)));
  for (const { stream_id: streamId } of rows) if (!known.has(streamId)) differences.push(`stream ${streamId} exists, the model has no such balance`);
  return { differences, balances: balances.length, ledgerEvents, usageCharges };
}
