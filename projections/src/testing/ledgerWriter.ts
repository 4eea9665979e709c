import { randomUUID } from 'node:crypto';
import {
  balanceStreamId,
  BalanceCommand,
  BalanceEvent,
  BalanceState,
  decide,
  evolve,
  foldBalance,
  formatCredits,
  fromStoredLedgerEvent,
  initialBalanceState,
  OpenBalance,
  toLedgerPayload,
} from '@tally/domain';
import type { AppendRequest, EventStore, JsonObject } from '@tally/event-store';
import { LEDGER_EVENT_SCHEMA_VERSION, type LedgerEventMetadataV1 } from '@tally/schemas';
import type { BalanceSnapshot } from '../balanceSnapshot';

/**
 * Test-only: writes ledger events the way the ledger service does (domain decide, payload
 * v1, expected revision) and computes the snapshots a projection must hold straight from
 * the domain's fold, independently of the projection's own code.
 */
export interface LedgerWriter {
  /**
   * Opens balances, one stream each, in one append. Returns their ids. Each call names customers
   * and products of its own, so a (customer, product) lookup finds this call's balance whatever
   * the tests before it opened in the same store.
   */
  open(count: number, options?: { customers?: number; threshold?: bigint | null }): Promise<string[]>;
  /** Runs one pseudo-random command on each chosen balance (top-up, usage, manual deduction, settings, holds), several balances per append. */
  activity(balanceIds: readonly string[], rounds: number): Promise<void>;
  run(balanceId: string, command: BalanceCommand): Promise<void>;
}

interface Tracked {
  state: BalanceState;
  revision: bigint;
}

export function createLedgerWriter(eventStore: EventStore, seed = 1): LedgerWriter {
  const balances = new Map<string, Tracked>();
  let opens = 0;
  let random = seed;
  // A small LCG: repeatable workloads without a dependency.
  const next = (bound: number) => {
    random = (random * 1103515245 + 12345) % 2147483648;
    return random % bound;
  };
  let clock = Date.UTC(2026, 0, 1);
  const at = () => new Date((clock += 1000)).toISOString();

  function request(balanceId: string, command: BalanceCommand): AppendRequest | undefined {
    const tracked = balances.get(balanceId) ?? { state: initialBalanceState, revision: -1n };
    let events: BalanceEvent[];
    try {
      events = decide(command, tracked.state);
    } catch (error) {
      // Random hold commands are often refused (does not fit, hold not open, not yet expired): as
      // on the command path, a refusal appends nothing.
      if (command.type === 'PlaceHold' || command.type === 'CaptureHold' || command.type === 'ReleaseHold' || command.type === 'ExpireHold') return undefined;
      throw error;
    }
    if (events.length === 0) return undefined;
    const state = events.reduce(evolve, tracked.state) as OpenBalance;
    balances.set(balanceId, { state, revision: tracked.revision + BigInt(events.length) });
    const metadata: LedgerEventMetadataV1 = {
      schemaVersion: LEDGER_EVENT_SCHEMA_VERSION,
      balanceId,
      customerId: state.customerId,
      productId: state.productId,
      causationId: null,
    };
    return {
      streamId: balanceStreamId(balanceId),
      expectedRevision: tracked.revision < 0n ? 'no_stream' : tracked.revision,
      events: events.map((event) => {
        const payload = toLedgerPayload(event);
        return { id: randomUUID(), type: payload.type, data: payload.data as unknown as JsonObject, metadata: { ...metadata } };
      }),
    };
  }

  const append = async (requests: (AppendRequest | undefined)[]) => {
    const present = requests.filter((r): r is AppendRequest => r !== undefined);
    if (present.length > 0) await eventStore.appendMany(present);
  };

  function randomCommand(): BalanceCommand {
    const credits = BigInt(1 + next(5_000_000));
    // A few hold ids per balance, so holds are placed, captured, released and expired across batches.
    const holdId = `hold-${next(3)}`;
    switch (next(11)) {
      case 7: {
        const placedAt = at();
        return { type: 'PlaceHold', holdId, credits, expiresAt: new Date(Date.parse(placedAt) + 5000).toISOString(), reference: null, at: placedAt };
      }
      case 8:
        return { type: 'CaptureHold', holdId, ...(next(2) === 0 ? { credits: BigInt(1 + next(1_000_000)) } : {}), reason: null, at: at() };
      case 9:
        return { type: 'ReleaseHold', holdId, reason: null, at: at() };
      case 10:
        return { type: 'ExpireHold', holdId, at: at() };
      case 0:
      case 1:
        return { type: 'TopUp', credits, source: 'manual', reason: 'test', at: at() };
      case 2:
        return { type: 'DeductManually', credits, reason: null, at: at() };
      case 3:
        return { type: 'ChangeSettings', name: `renamed ${next(1000)}`, lowBalanceThreshold: BigInt(next(3)) * 1_000_000n, at: at() };
      default:
        return {
          type: 'ConsumeUsage',
          credits,
          usage: { eventId: randomUUID(), event: 'api_call', timestamp: at(), quantity: '1' },
          at: at(),
        };
    }
  }

  return {
    async open(count, options = {}) {
      const customers = options.customers ?? count;
      opens += 1;
      const ids = Array.from({ length: count }, () => randomUUID());
      const requests = ids.map((balanceId, index) =>
        request(balanceId, {
          type: 'OpenBalance',
          balanceId,
          customerId: `customer-${opens}-${index % customers}`,
          productId: `product-${opens}-${index}`,
          name: `balance ${index}`,
          lowBalanceThreshold: options.threshold === undefined ? 2_000_000n : options.threshold,
          startingBalance: 10_000_000n,
          at: at(),
        }),
      );
      for (let start = 0; start < requests.length; start += 200) await append(requests.slice(start, start + 200));
      return ids;
    },

    async activity(balanceIds, rounds) {
      for (let round = 0; round < rounds; round += 1) {
        for (let start = 0; start < balanceIds.length; start += 200) {
          await append(balanceIds.slice(start, start + 200).map((balanceId) => request(balanceId, randomCommand())));
        }
      }
    },

    async run(balanceId, command) {
      await append([request(balanceId, command)]);
    },
  };
}

/** The snapshots of every balance in the store as the domain folds them, by balance id. */
export async function expectedSnapshots(eventStore: EventStore): Promise<Map<string, BalanceSnapshot>> {
  const byStream = new Map<string, { events: BalanceEvent[]; revision: bigint; position: bigint }>();
  let after = 0n;
  for (;;) {
    const page = await eventStore.readAll({ after, maxCount: 5000 });
    if (page.length === 0) break;
    for (const recorded of page) {
      if (!recorded.streamId.startsWith('creditBalance-')) continue;
      const entry = byStream.get(recorded.streamId) ?? { events: [], revision: 0n, position: 0n };
      entry.events.push(fromStoredLedgerEvent(recorded));
      entry.revision = recorded.revision;
      entry.position = recorded.position;
      byStream.set(recorded.streamId, entry);
    }
    after = page[page.length - 1]!.position;
  }
  const snapshots = new Map<string, BalanceSnapshot>();
  for (const { events, revision, position } of byStream.values()) {
    const state = foldBalance(events) as OpenBalance;
    snapshots.set(state.balanceId, {
      balanceId: state.balanceId,
      customerId: state.customerId,
      productId: state.productId,
      name: state.name,
      balance: formatCredits(state.balance),
      held: formatCredits(state.held),
      available: formatCredits(state.balance - state.held),
      overdraftLimit: formatCredits(state.overdraftLimit),
      holds: JSON.stringify(
        Object.fromEntries(
          Object.entries(state.holds).map(([id, hold]) => [id, { credits: formatCredits(hold.credits), expiresAt: hold.expiresAt, reference: hold.reference }]),
        ),
      ),
      lowBalanceThreshold: state.lowBalanceThreshold === null ? null : formatCredits(state.lowBalanceThreshold),
      belowThreshold: state.lowBalanceThreshold !== null && state.balance < state.lowBalanceThreshold,
      revision: revision.toString(),
      position: position.toString(),
      updatedAt: state.updatedAt,
    });
  }
  return snapshots;
}
