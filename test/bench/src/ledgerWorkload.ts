import { balanceStreamId, decide, evolve, initialBalanceState, parsePositiveCredits, type BalanceCommand, type FoldedBalance } from '@tally/domain';
import type { AppendRequest, EventStore, EventToAppend } from '@tally/event-store';
import { commandIds, expectedRevisionOf, NO_STREAM, toEventsToAppend, type BalanceContext } from '@tally/ledger';

/** A balance the bench writes to directly, with its state kept in memory instead of re-read. */
export interface WorkloadBalance {
  readonly context: BalanceContext;
  loaded: FoldedBalance;
}

export interface WorkloadCommand {
  readonly balance: WorkloadBalance;
  /** Ledger event ids derive from it (see @tally/ledger deterministicId), as in the services. */
  readonly commandId: string;
  readonly command: BalanceCommand;
}

export function unopenedBalance(context: BalanceContext): WorkloadBalance {
  return { context, loaded: { state: initialBalanceState, revision: NO_STREAM } };
}

/**
 * Decides the commands with the domain's own decider and shapes them as one append request per
 * stream, as the metering consumer does for a batch: the written events are the real ones, not
 * look-alikes. Each balance's state moves on as though the append succeeds; a failed append
 * stops the bench anyway.
 */
export function decideAppends(commands: readonly WorkloadCommand[]): AppendRequest[] {
  const requests = new Map<WorkloadBalance, { expected: bigint; events: EventToAppend[] }>();
  for (const { balance, commandId, command } of commands) {
    const decided = decide(command, balance.loaded.state);
    if (decided.length === 0) continue;
    let request = requests.get(balance);
    if (request === undefined) {
      request = { expected: balance.loaded.revision, events: [] };
      requests.set(balance, request);
    }
    request.events.push(...toEventsToAppend(decided, balance.context, commandId));
    balance.loaded = { state: decided.reduce(evolve, balance.loaded.state), revision: balance.loaded.revision + BigInt(decided.length) };
  }
  return [...requests].map(([balance, { expected, events }]) => ({
    streamId: balanceStreamId(balance.context.balanceId),
    expectedRevision: expectedRevisionOf(expected),
    events,
  }));
}

/** When usage happened (an ISO instant): one for all, or one for each usage number. */
export type UsageInstant = string | ((sequence: number) => string);

/**
 * `count` ConsumeUsage commands, round-robin over the balances from usage number `from` on, as
 * the metering consumer would decide them for `api_call` usage of 1.5 credits.
 */
export function usageCommands(balances: readonly WorkloadBalance[], from: number, count: number, idPrefix: string, instant: UsageInstant): WorkloadCommand[] {
  const credits = parsePositiveCredits('1.5');
  return Array.from({ length: count }, (_, offset) => {
    const sequence = from + offset;
    const balance = balances[sequence % balances.length]!;
    const usageId = `${idPrefix}-${sequence}`;
    const at = typeof instant === 'string' ? instant : instant(sequence);
    return {
      balance,
      commandId: commandIds.usage(usageId, balance.context.balanceId),
      command: { type: 'ConsumeUsage', credits, usage: { eventId: usageId, event: 'api_call', timestamp: at, quantity: '500' }, at },
    };
  });
}

/** Writes `count` usage deductions straight into the ledger, `batch` per atomic append. */
export async function appendUsageLedger(eventStore: EventStore, balances: readonly WorkloadBalance[], count: number, idPrefix: string, batch = 500): Promise<void> {
  const at = new Date().toISOString();
  for (let from = 0; from < count; from += batch) {
    await eventStore.appendMany(decideAppends(usageCommands(balances, from, Math.min(batch, count - from), idPrefix, at)));
  }
}
