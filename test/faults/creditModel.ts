import { parseCredits, type Micros } from '@tally/domain';

/**
 * The fault suite's own account of what every balance must hold: the products' rules applied to
 * the usage events the test published, by hand, in integer micro-credits. It shares nothing with
 * Tally's pricing code (only parseCredits, to read the rules' decimal strings), so a pricing or
 * dedup bug in Tally shows as a difference instead of being reproduced here.
 */
export type PlainValue = null | boolean | number | string;

export interface ModelRule {
  readonly event: string;
  readonly credits: string;
  readonly perUnitOf?: string;
  readonly where?: Readonly<Record<string, string>>;
}

export interface ModelProduct {
  readonly id: string;
  readonly name: string;
  readonly consumption: readonly ModelRule[];
  readonly lowBalanceThreshold: string | null;
}

export interface ModelUsage {
  readonly id: string;
  readonly customerId: string;
  readonly event: string;
  readonly timestamp: number;
  readonly properties: Readonly<Record<string, PlainValue>>;
}

export interface ModelBalance {
  readonly balanceId: string;
  readonly customerId: string;
  readonly productId: string;
  readonly starting: Micros;
  /** Manual top-ups by Idempotency-Key: however often a request was retried, it counts once. */
  readonly topUps: ReadonlyMap<string, Micros>;
  /** Usage charges by usage event id: however often an event was published, it counts once. */
  readonly usage: ReadonlyMap<string, Micros>;
  /** Holds as their clients learned them (a definitive answer, after any retries with the same key). */
  readonly holds: ReadonlyMap<string, ModelHold>;
}

/**
 * What a hold's client was told: granted (201) or refused (402); then captured (200, with the
 * credits charged), released (200), or refused as no longer open (409: only an expiry can have
 * freed it, since each hold's client does one thing with it), or left to expire.
 */
export interface ModelHold {
  readonly placed: 'granted' | 'refused';
  readonly credits: Micros;
  readonly ended?: { readonly by: 'captured'; readonly credits: Micros } | { readonly by: 'released' } | { readonly by: 'not_open' } | { readonly by: 'left' };
}

export type SkipReason = 'no_balance' | 'no_matching_rule' | 'zero_cost' | 'already_applied';

/** What the consumer's counters must read once every publication was metered exactly once. */
export interface ExpectedCounters {
  readonly matched: number;
  readonly skippedByReason: Readonly<Record<SkipReason, number>>;
}

export interface CreditModel {
  readonly products: ReadonlyMap<string, ModelProduct>;
  addProduct(product: ModelProduct): void;
  openBalance(balance: { balanceId: string; customerId: string; productId: string; starting: string }): void;
  /** One publication of a usage event (a first one or a duplicate); returns the credits it costs each balance. */
  publish(usage: ModelUsage): ReadonlyMap<string, Micros>;
  topUp(balanceId: string, idempotencyKey: string, credits: string): void;
  /** A hold's placement as its client finally learned it. */
  placeHold(balanceId: string, holdId: string, credits: Micros, placed: ModelHold['placed']): void;
  /** What the client did with a granted hold, as the answer said. */
  endHold(balanceId: string, holdId: string, ended: NonNullable<ModelHold['ended']>): void;
  balances(): readonly ModelBalance[];
  balance(balanceId: string): ModelBalance;
  expectedBalance(balanceId: string): Micros;
  /** (usage event, balance) pairs that must each be exactly one CreditConsumed. */
  chargeCount(): number;
  expectedCounters(): ExpectedCounters;
}

interface Decimal {
  readonly digits: bigint;
  readonly scale: number;
}

/** The test only publishes plain non-negative decimals as quantities; anything else is a test bug. */
function quantityOf(value: PlainValue | undefined): Decimal {
  const text = typeof value === 'number' ? String(value) : value;
  const match = typeof text === 'string' ? /^(\d+)(?:\.(\d+))?$/.exec(text) : null;
  if (match === null) throw new Error(`the model only prices plain decimal quantities, got ${JSON.stringify(value)}`);
  const fraction = match[2] ?? '';
  return { digits: BigInt(`${match[1]}${fraction}`), scale: fraction.length };
}

function matches(rule: ModelRule, usage: ModelUsage): boolean {
  if (rule.event !== usage.event) return false;
  return Object.entries(rule.where ?? {}).every(([key, expected]) => {
    const actual = usage.properties[key];
    return actual !== undefined && actual !== null && String(actual) === expected;
  });
}

/** Σ credits × quantity over the matching rules, rounded half-up to micro-credits once; undefined when none matches. */
export function modelCost(product: ModelProduct, usage: ModelUsage): Micros | undefined {
  const terms = product.consumption
    .filter((rule) => matches(rule, usage))
    .map((rule) => ({ micros: parseCredits(rule.credits), quantity: rule.perUnitOf === undefined ? { digits: 1n, scale: 0 } : quantityOf(usage.properties[rule.perUnitOf]) }));
  if (terms.length === 0) return undefined;
  const scale = Math.max(...terms.map((term) => term.quantity.scale));
  const numerator = terms.reduce((sum, { micros, quantity }) => sum + micros * quantity.digits * 10n ** BigInt(scale - quantity.scale), 0n);
  const denominator = 10n ** BigInt(scale);
  return (numerator * 2n + denominator) / (denominator * 2n);
}

interface MutableBalance {
  readonly balanceId: string;
  readonly customerId: string;
  readonly productId: string;
  readonly starting: Micros;
  readonly topUps: Map<string, Micros>;
  readonly usage: Map<string, Micros>;
  readonly holds: Map<string, ModelHold>;
}

export function createCreditModel(): CreditModel {
  const products = new Map<string, ModelProduct>();
  const balances = new Map<string, MutableBalance>();
  const byCustomer = new Map<string, MutableBalance[]>();
  const published = new Set<string>();
  let matched = 0;
  const skippedByReason: Record<SkipReason, number> = { no_balance: 0, no_matching_rule: 0, zero_cost: 0, already_applied: 0 };

  const balanceOf = (balanceId: string): MutableBalance => {
    const balance = balances.get(balanceId);
    if (balance === undefined) throw new Error(`the model has no balance ${balanceId}`);
    return balance;
  };

  return {
    products,
    addProduct(product) {
      products.set(product.id, product);
    },
    openBalance({ balanceId, customerId, productId, starting }) {
      if (!products.has(productId)) throw new Error(`the model has no product ${productId}`);
      const balance: MutableBalance = { balanceId, customerId, productId, starting: parseCredits(starting), topUps: new Map(), usage: new Map(), holds: new Map() };
      balances.set(balanceId, balance);
      byCustomer.set(customerId, [...(byCustomer.get(customerId) ?? []), balance]);
    },
    publish(usage) {
      // Metered once, at its first publication (issue 10): a later one of the same customer and
      // id charges nothing and counts once as already applied, whatever it would charge now.
      const key = JSON.stringify([usage.customerId, usage.id]);
      if (published.has(key)) {
        skippedByReason.already_applied += 1;
        return new Map<string, Micros>();
      }
      published.add(key);
      const owned = byCustomer.get(usage.customerId) ?? [];
      if (owned.length === 0) skippedByReason.no_balance += 1;
      const charges = new Map<string, Micros>();
      for (const balance of owned) {
        const cost = modelCost(products.get(balance.productId)!, usage);
        if (cost === undefined) skippedByReason.no_matching_rule += 1;
        else if (cost === 0n) skippedByReason.zero_cost += 1;
        else {
          balance.usage.set(usage.id, cost);
          charges.set(balance.balanceId, cost);
          matched += 1;
        }
      }
      return charges;
    },
    topUp(balanceId, idempotencyKey, credits) {
      balanceOf(balanceId).topUps.set(idempotencyKey, parseCredits(credits));
    },
    placeHold(balanceId, holdId, credits, placed) {
      balanceOf(balanceId).holds.set(holdId, { placed, credits });
    },
    endHold(balanceId, holdId, ended) {
      const holds = balanceOf(balanceId).holds;
      const hold = holds.get(holdId);
      if (hold === undefined || hold.placed !== 'granted') throw new Error(`the model has no granted hold ${holdId}`);
      holds.set(holdId, { ...hold, ended });
    },
    balances: () => [...balances.values()],
    balance: balanceOf,
    expectedBalance(balanceId) {
      const balance = balanceOf(balanceId);
      let total = balance.starting;
      for (const credits of balance.topUps.values()) total += credits;
      for (const credits of balance.usage.values()) total -= credits;
      // A capture is the only hold outcome that moves the settled balance.
      for (const hold of balance.holds.values()) if (hold.ended?.by === 'captured') total -= hold.ended.credits;
      return total;
    },
    chargeCount: () => [...balances.values()].reduce((sum, balance) => sum + balance.usage.size, 0),
    expectedCounters: () => ({ matched, skippedByReason: { ...skippedByReason } }),
  };
}
