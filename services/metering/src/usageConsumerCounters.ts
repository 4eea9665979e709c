import type { SkipReason } from './priceUsageBatch';

/** A snapshot of what the consumer has done since it was created. */
export interface UsageConsumerCounters {
  /** Kafka messages processed (committed), good and bad. */
  readonly consumed: number;
  /** (usage event, balance) pairs that became a CreditConsumed. */
  readonly matched: number;
  /** Usage events (reason `no_balance`) and (usage event, balance) pairs (other reasons) that changed nothing. */
  readonly skipped: number;
  readonly skippedByReason: Readonly<Record<SkipReason, number>>;
  /** Messages written to the dead-letter topic. */
  readonly deadLettered: number;
  /** Dead letters the dead-letter topic refused for good, each try counted (their partition waits and tries again). */
  readonly deadLetterRefusals: number;
  /** Ledger events written: CreditConsumed plus the warnings they caused. */
  readonly appended: number;
  readonly batches: number;
  /** Appends refused for a stale expected revision (another writer got there first), then redone. */
  readonly conflicts: number;
  /** Per `topic/partition`: messages behind the last batch processed, as of its fetch. */
  readonly lag: Readonly<Record<string, number>>;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export interface CounterRegistry {
  readonly values: Mutable<Omit<UsageConsumerCounters, 'skippedByReason' | 'lag' | 'skipped'>>;
  skip(reason: SkipReason, count?: number): void;
  lag(topic: string, partition: number, behind: number): void;
  snapshot(): UsageConsumerCounters;
}

export function createCounterRegistry(): CounterRegistry {
  const values = { consumed: 0, matched: 0, deadLettered: 0, deadLetterRefusals: 0, appended: 0, batches: 0, conflicts: 0 };
  const skippedByReason: Record<SkipReason, number> = {
    no_balance: 0,
    product_not_found: 0,
    no_matching_rule: 0,
    zero_cost: 0,
    balance_not_opened: 0,
    already_applied: 0,
  };
  const lag = new Map<string, number>();
  return {
    values,
    skip(reason, count = 1) {
      skippedByReason[reason] += count;
    },
    lag(topic, partition, behind) {
      lag.set(`${topic}/${partition}`, behind);
    },
    snapshot() {
      return {
        ...values,
        skipped: Object.values(skippedByReason).reduce((sum, count) => sum + count, 0),
        skippedByReason: { ...skippedByReason },
        lag: Object.fromEntries(lag),
      };
    },
  };
}
