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
  readonly heldAfter?: string;
  readonly balance?: string;
  readonly source?: string;
  readonly usage?: { readonly eventId: string } | null;
  readonly overdraftLimit?: string;
  readonly holdId?: string;
  readonly released?: string;
  readonly expiresAt?: string;
  readonly occurredAt?: string;
}

/**
 * Checks a scenario's end state against its model, from three places: the event store streams
 * (the truth), the Redis snapshots (the projector's output) and the API (`?consistent=true`).
 * Per balance: revisions 0..n with the opening first; every amount-bearing event's balance-after
 * continues the running sum; each usage event charged at most once, every expected one present,
 * at the model's price; each top-up Idempotency-Key once; the final balance equal to the model's.
 * Holds: the held total continues through every event (heldAfter); each hold placed once, freed
 * at most once, never granted past −overdraftLimit, expired no earlier than its expiresAt, and
 * each as its client was told (granted or refused; captured for the credits asked, released, or
 * found expired); the snapshots and the API show the stream's held and available.
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
    let held: Micros = 0n;
    let overdraftLimit: Micros = 0n;
    const openHolds = new Map<string, { credits: Micros; expiresAt: string }>();
    const freedBy = new Map<string, { type: string; credits?: Micros }>();
    const charged = new Map<string, Micros>();
    const topUpKeys = new Set<string>();
    events.forEach((event, index) => {
      if (event.revision !== BigInt(index)) say(`event ${event.id} has revision ${event.revision}, expected ${index}`);
      const data = event.data as EventData;
      const after = (field: 'balanceAfter' | 'balance') => {
        const stated = data[field] === undefined ? undefined : parseStoredCredits(data[field]);
        if (stated !== running) say(`${event.type} at revision ${index} states ${field} ${data[field]}, the chain gives ${formatCredits(running)}`);
        if (field === 'balanceAfter') {
          // Absent on events without holds open: nothing was held.
          const statedHeld = parseStoredCredits(data.heldAfter ?? '0');
          if (statedHeld !== held) say(`${event.type} at revision ${index} states heldAfter ${data.heldAfter}, the open holds give ${formatCredits(held)}`);
        }
      };
      const freeHold = () => {
        const holdId = data.holdId ?? '';
        const hold = openHolds.get(holdId);
        if (hold === undefined) {
          say(`${event.type} at revision ${index} frees hold ${holdId}, which is not open`);
          return undefined;
        }
        openHolds.delete(holdId);
        held -= hold.credits;
        freedBy.set(holdId, { type: event.type, ...(data.credits !== undefined ? { credits: parseStoredCredits(data.credits) } : {}) });
        after('balanceAfter');
        return hold;
      };
      switch (event.type) {
        case 'CreditBalanceOpened':
        case 'CreditBalanceSettingsChanged':
          overdraftLimit = parseStoredCredits(data.overdraftLimit ?? '0');
          break;
        case 'CreditsHeld': {
          const holdId = data.holdId ?? '';
          const credits = parseStoredCredits(data.credits ?? '');
          if (openHolds.has(holdId) || freedBy.has(holdId)) say(`hold ${holdId} placed twice`);
          openHolds.set(holdId, { credits, expiresAt: data.expiresAt ?? '' });
          held += credits;
          after('balanceAfter');
          if (running - held < -overdraftLimit) say(`hold ${holdId} granted with available ${formatCredits(running - held)} below −${formatCredits(overdraftLimit)}`);
          const told = balance.holds.get(holdId);
          if (told === undefined) say(`hold ${holdId} is not one the test placed`);
          else if (told.placed !== 'granted') say(`hold ${holdId} is stored, but its client was told ${told.placed}`);
          else if (told.credits !== credits) say(`hold ${holdId} holds ${formatCredits(credits)}, the client asked ${formatCredits(told.credits)}`);
          break;
        }
        case 'HoldCaptured': {
          const hold = freeHold();
          const credits = parseStoredCredits(data.credits ?? '');
          const previous = events[index - 1]?.data as EventData | undefined;
          if (previous?.source !== 'hold' || previous.credits === undefined || parseStoredCredits(previous.credits) !== credits) {
            say(`HoldCaptured of ${data.holdId} at revision ${index} does not follow its CreditConsumed of ${data.credits}`);
          }
          if (hold !== undefined && credits + parseStoredCredits(data.released ?? '') !== hold.credits) say(`hold ${data.holdId} captured and released more or less than it held`);
          break;
        }
        case 'HoldReleased':
          freeHold();
          break;
        case 'HoldExpired': {
          const hold = freeHold();
          if (hold !== undefined && Date.parse(data.occurredAt ?? '') < Date.parse(hold.expiresAt)) say(`hold ${data.holdId} expired at ${data.occurredAt}, before its ${hold.expiresAt}`);
          break;
        }
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
          // A capture's charge: checked with the HoldCaptured that follows it.
          if (data.source === 'hold') break;
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
    for (const [holdId, told] of balance.holds) {
      const freed = freedBy.get(holdId);
      const stored = freed !== undefined || openHolds.has(holdId);
      if (told.placed === 'refused') {
        if (stored) say(`hold ${holdId} was refused (402) but is stored`);
        continue;
      }
      if (!stored) say(`hold ${holdId} was granted (201) but is not stored`);
      const ended = told.ended;
      if (ended?.by === 'captured' && (freed?.type !== 'HoldCaptured' || freed.credits !== ended.credits)) {
        say(`hold ${holdId} was captured for ${formatCredits(ended.credits)}, the stream has ${freed?.type ?? 'it open'} ${freed?.credits === undefined ? '' : formatCredits(freed.credits)}`);
      }
      if (ended?.by === 'released' && freed?.type !== 'HoldReleased') say(`hold ${holdId} was released, the stream has ${freed?.type ?? 'it open'}`);
      // 409 to its one capture or release, or never touched: only the expiry can have freed it.
      if ((ended?.by === 'not_open' || ended?.by === 'left') && freed?.type !== 'HoldExpired') say(`hold ${holdId} (${ended.by}) should have expired, the stream has ${freed?.type ?? 'it open'}`);
    }
    const expected = model.expectedBalance(id);
    if (running !== expected) say(`the ledger ends at ${formatCredits(running)}, the model at ${formatCredits(expected)}`);

    const snapshot = await world.readModel.getBalance(id);
    const last = events[events.length - 1];
    if (snapshot === undefined) say('no Redis snapshot');
    else {
      if (snapshot.balance !== formatCredits(expected)) say(`the Redis snapshot holds ${snapshot.balance}, the model ${formatCredits(expected)}`);
      if (snapshot.held !== formatCredits(held) || snapshot.available !== formatCredits(running - held)) {
        say(`the Redis snapshot holds held ${snapshot.held} and available ${snapshot.available}, the stream ${formatCredits(held)} and ${formatCredits(running - held)}`);
      }
      if (last !== undefined && snapshot.revision !== String(last.revision)) say(`the Redis snapshot is at revision ${snapshot.revision}, the stream at ${last.revision}`);
    }
    const response = await world.api.getBalance(id, { consistent: true });
    const served = response.body as { balance?: string; held?: string };
    if (response.status !== 200 || served.balance !== formatCredits(expected) || served.held !== formatCredits(held)) {
      say(`the API answers ${response.status} ${JSON.stringify(response.body)}, the model ${formatCredits(expected)} with ${formatCredits(held)} held`);
    }
  }

  const { rows } = await world.db.pool.query<{ stream_id: string }>('SELECT stream_id FROM streams');
  const known = new Set(balances.map((balance) => balanceStreamId(balance.balanceId)));
  for (const { stream_id: streamId } of rows) if (!known.has(streamId)) differences.push(`stream ${streamId} exists, the model has no such balance`);
  return { differences, balances: balances.length, ledgerEvents, usageCharges };
}
