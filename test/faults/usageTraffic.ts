import type { CreditModel, ModelProduct, ModelUsage } from './creditModel';
import type { SeededRandom } from './seededRandom';

/**
 * The catalog every scenario meters against: per-event and per-unit rules, a `where` filter,
 * two rules adding up on one event, a sub-micro-credit price that needs rounding, and an event
 * that two products of one customer both charge.
 */
export const FAULT_PRODUCTS: readonly ModelProduct[] = [
  {
    id: 'compute',
    name: 'Compute credits',
    lowBalanceThreshold: '60',
    consumption: [
      { event: 'api_call', credits: '0.01' },
      { event: 'api_call', credits: '0.005', where: { plan: 'pro' } },
      { event: 'tokens', credits: '0.000007', perUnitOf: 'count' },
      { event: 'gpu', credits: '1.5', perUnitOf: 'seconds', where: { region: 'eu' } },
    ],
  },
  {
    id: 'storage',
    name: 'Storage credits',
    lowBalanceThreshold: null,
    consumption: [
      { event: 'write', credits: '0.000003', perUnitOf: 'bytes' },
      { event: 'api_call', credits: '0.001' },
    ],
  },
];

export type UsageFormat = 'avro' | 'json';

export interface OutgoingUsage {
  readonly usage: ModelUsage;
  readonly format: UsageFormat;
}

export interface TrafficStats {
  /** Distinct usage events published. */
  readonly unique: number;
  /** Extra publications of an event right after itself (a producer retry). */
  readonly duplicates: number;
  /** Extra publications of an older event (a producer replaying a range). */
  readonly replays: number;
}

export interface UsageTraffic {
  /** `count` fresh usage events, each recorded in the model, with duplicates and replays mixed in. */
  next(count: number): OutgoingUsage[];
  /** One fresh event for one customer (recovery probes). */
  nextFor(customerId: string, event?: ModelUsage['event']): OutgoingUsage;
  stats(): TrafficStats;
}

const BASE_TIME = Date.UTC(2026, 0, 1);

export function createUsageTraffic({
  model,
  random,
  customers,
  idPrefix,
  duplicateRate = 0.05,
  replayRate = 0.02,
}: {
  model: CreditModel;
  random: SeededRandom;
  customers: readonly string[];
  idPrefix: string;
  duplicateRate?: number;
  replayRate?: number;
}): UsageTraffic {
  let sequence = 0;
  let duplicates = 0;
  let replays = 0;
  const history: OutgoingUsage[] = [];

  function fresh(customerId: string, event?: string): OutgoingUsage {
    sequence += 1;
    const kind = event ?? random.pick(['api_call', 'api_call', 'api_call', 'tokens', 'tokens', 'tokens', 'gpu', 'write', 'write', 'ping']);
    const properties: Record<string, string | number> = {};
    if (kind === 'api_call') properties.plan = random.pick(['pro', 'free']);
    if (kind === 'tokens') properties.count = random.int(1, 5000);
    // Quarter seconds: exact as a double and printed as the same decimal by any producer.
    if (kind === 'gpu') Object.assign(properties, { seconds: random.int(1, 40) / 4, region: random.pick(['eu', 'us']) });
    // A decimal string quantity whose price falls between two micro-credits half the time.
    if (kind === 'write') properties.bytes = `${random.int(0, 9999)}.5`;
    const usage: ModelUsage = { id: `${idPrefix}-${sequence}`, customerId, event: kind, timestamp: BASE_TIME + sequence, properties };
    model.publish(usage);
    const outgoing: OutgoingUsage = { usage, format: random.chance(0.5) ? 'avro' : 'json' };
    history.push(outgoing);
    return outgoing;
  }

  function again(outgoing: OutgoingUsage): OutgoingUsage {
    model.publish(outgoing.usage);
    // The same event in the other wire format is still the same event.
    return random.chance(0.5) ? outgoing : { ...outgoing, format: outgoing.format === 'avro' ? 'json' : 'avro' };
  }

  return {
    next(count) {
      const messages: OutgoingUsage[] = [];
      for (let i = 0; i < count; i += 1) {
        const outgoing = fresh(random.pick(customers));
        messages.push(outgoing);
        if (random.chance(duplicateRate)) {
          duplicates += 1;
          messages.push(again(outgoing));
        }
        if (history.length > 1 && random.chance(replayRate)) {
          replays += 1;
          messages.push(again(random.pick(history)));
        }
      }
      return messages;
    },
    nextFor(customerId, event = 'api_call') {
      return fresh(customerId, event);
    },
    stats: () => ({ unique: sequence, duplicates, replays }),
  };
}
