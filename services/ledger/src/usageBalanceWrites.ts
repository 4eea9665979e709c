import type { EventStore } from '@tally/event-store';
import { createBalanceCommandPath, type BalanceCommandPath } from './balanceCommandPath';
import { createBalanceStates, type BalanceStates, type BalanceStatesOptions } from './balanceStates';

/**
 * A load by the consumer that folded this many events or more keeps its result at once (a
 * replaceable stored state), and its write-behind keeps a balance's state once it wrote this many
 * events to it since the last one: below about 64 events the fold is cheaper than the row it
 * would save at the next cold load; above, the row pays for itself the next time the balance is met.
 */
export const CONSUMER_KEEP_AFTER_LOAD_EVENTS = 64;

/**
 * What the metering consumer writes balances through: the one command path, and the states it
 * decides on, whose loadMany the consumer also uses to wait for balances being opened. Its own
 * per consumer process (createBalanceStates with snapshotEveryWrite: false, so that a balance it
 * grows keeps a stored state each snapshotAfterEvents events and no more).
 */
export interface UsageBalanceWrites {
  readonly commands: BalanceCommandPath;
  readonly states: BalanceStates;
}

/**
 * The metering consumer's states and command path, one pair per consumer process. Its states
 * keep a stored state each snapshotAfterEvents events a balance grows rather than on every write
 * (snapshotEveryWrite: false): the consumer writes a busy balance many times a second, and its
 * replays are answered by markers, while an API process meeting a balance the consumer grew to a
 * million events then folds a short tail.
 */
export function createUsageBalanceWrites(
  options: Omit<BalanceStatesOptions, 'snapshotEveryWrite' | 'eventStore' | 'keepAfterLoadEvents'> & {
    readonly eventStore: Pick<EventStore, 'readStream' | 'readStreamsPaged' | 'appendMany' | 'appendExclusively' | 'readEventsById'>;
  },
): UsageBalanceWrites {
  // Write-behind instead (BalanceStates.flush, run by the consumer), and a load that folded a long
  // tail keeps its result at once (CONSUMER_KEEP_AFTER_LOAD_EVENTS); the policy as a whole: DEFAULT_STATE_FLUSH_MS in @tally/metering.
  const states = createBalanceStates({ ...options, snapshotEveryWrite: false, keepAfterLoadEvents: CONSUMER_KEEP_AFTER_LOAD_EVENTS });
  return { states, commands: createBalanceCommandPath({ eventStore: options.eventStore, states, logger: options.logger }) };
}
