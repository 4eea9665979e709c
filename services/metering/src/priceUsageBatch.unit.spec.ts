import { creditProductFromDto, InvalidUsageEventError, type CreditProduct, type UsageEvent } from '@tally/domain';
import { commandIds, ledgerEventId, type BalanceRef } from '@tally/ledger';
import { StoredProductInvalidError } from './meteringErrors';
import { priceUsageBatch } from './priceUsageBatch';

const apiProduct: CreditProduct = creditProductFromDto({
  id: 'api',
  name: 'API credits',
  description: '',
  consumption: [
    { event: 'api_call', credits: '0.333333' },
    { event: 'api_call', credits: '1.5', where: { tier: 'premium' } },
    { event: 'tokens', credits: '0.000002', perUnitOf: 'count' },
  ],
  lowBalanceThreshold: null,
  bundles: [],
});

const storageProduct: CreditProduct = creditProductFromDto({
  id: 'storage',
  name: 'Storage',
  description: '',
  consumption: [
    { event: 'stored', credits: '0.25', perUnitOf: 'gb' },
    { event: 'api_call', credits: '0' },
  ],
  lowBalanceThreshold: null,
  bundles: [],
});

const products = new Map([
  ['api', apiProduct],
  ['storage', storageProduct],
]);

const usage = (id: string, customerId: string, event: string, properties: UsageEvent['properties'] = {}): UsageEvent => ({
  id,
  customerId,
  event,
  timestamp: Date.UTC(2026, 2, 1),
  properties,
});

const balance = (id: string, customerId: string, productId: string): Pick<BalanceRef, 'id' | 'customerId' | 'productId'> => ({ id, customerId, productId });

const byCustomer = new Map<string, Pick<BalanceRef, 'id' | 'customerId' | 'productId'>[]>([
  ['alice', [balance('a-api', 'alice', 'api'), balance('a-sto', 'alice', 'storage')]],
  ['bob', [balance('b-api', 'bob', 'api')]],
  ['carol', [balance('c-old', 'carol', 'retired')]],
]);

describe('priceUsageBatch', () => {
  it('charges each balance of the customer what its product costs, with deterministic ids', () => {
    const priced = priceUsageBatch(
      [usage('u1', 'alice', 'api_call', { tier: 'premium' }), usage('u2', 'bob', 'tokens', { count: 1250 })],
      byCustomer,
      products,
    );
    expect(priced.invalid).toEqual([]);
    expect(priced.charges.map((c) => [c.index, c.balance.balanceId, c.credits, c.quantity])).toEqual([
      [0, 'a-api', 1_833_333n, '1'],
      [1, 'b-api', 2_500n, '1250'],
    ]);
    const first = priced.charges[0]!;
    expect(first.balance).toEqual({ balanceId: 'a-api', customerId: 'alice', productId: 'api' });
    expect(first.commandId).toBe(commandIds.usage('u1', 'a-api'));
    expect(first.firstEventId).toBe(ledgerEventId(commandIds.usage('u1', 'a-api'), 0));
    // The storage product has an api_call rule of 0 credits: matched, but nothing to charge.
    expect(priced.skips).toEqual([{ index: 0, reason: 'zero_cost', balanceId: 'a-sto' }]);
  });

  it('rounds the sum of the matching rules half-up to micro-credits once', () => {
    const priced = priceUsageBatch([usage('u1', 'alice', 'stored', { gb: '0.0000042' })], byCustomer, products);
    // 0.25 × 0.0000042 = 0.00000105 → 0.000001
    expect(priced.charges.map((c) => c.credits)).toEqual([1n]);
    expect(priced.skips).toEqual([{ index: 0, reason: 'no_matching_rule', balanceId: 'a-api' }]);
  });

  it('skips, with a reason, customers without balances and balances whose product is unknown', () => {
    const priced = priceUsageBatch([usage('u1', 'dave', 'api_call'), usage('u2', 'carol', 'api_call')], byCustomer, products);
    expect(priced.charges).toEqual([]);
    expect(priced.skips).toEqual([
      { index: 0, reason: 'no_balance' },
      { index: 1, reason: 'product_not_found', balanceId: 'c-old' },
    ]);
  });

  describe('usage naming a hold (holdId) that costs its balance nothing', () => {
    const zeroCharge = (index: number, usageId: string, balanceId: string, customerId: string, productId: string) => {
      const commandId = commandIds.usage(usageId, balanceId);
      return { index, balance: { balanceId, customerId, productId }, credits: 0n, quantity: '0', commandId, firstEventId: ledgerEventId(commandId, 0) };
    };

    it('charges the balance holding it 0 credits, so the decider frees the hold, and still reports why nothing was charged', () => {
      const priced = priceUsageBatch(
        [
          // The storage product's api_call rule costs 0: zero_cost on a-sto, 0.333333 on a-api.
          usage('u1', 'alice', 'api_call', { holdId: 'a-sto:job' }),
          // No rule of the storage product matches 'tokens'.
          usage('u2', 'alice', 'tokens', { count: 5, holdId: 'a-sto:job' }),
          // A per-unit quantity of 0.
          usage('u3', 'alice', 'stored', { gb: 0, holdId: 'a-sto:job' }),
        ],
        byCustomer,
        products,
      );
      expect(priced.invalid).toEqual([]);
      expect(priced.charges.filter((c) => c.balance.balanceId === 'a-sto')).toEqual([
        { ...zeroCharge(0, 'u1', 'a-sto', 'alice', 'storage'), quantity: '1' },
        zeroCharge(1, 'u2', 'a-sto', 'alice', 'storage'),
        zeroCharge(2, 'u3', 'a-sto', 'alice', 'storage'),
      ]);
      // A usage event's charges stay adjacent, in balance order (usageCommands relies on it).
      expect(priced.charges.map((c) => [c.index, c.balance.balanceId])).toEqual([
        [0, 'a-api'],
        [0, 'a-sto'],
        [1, 'a-api'],
        [1, 'a-sto'],
        [2, 'a-sto'],
      ]);
      expect(priced.skips).toEqual([
        { index: 0, reason: 'zero_cost', balanceId: 'a-sto' },
        { index: 1, reason: 'no_matching_rule', balanceId: 'a-sto' },
        { index: 2, reason: 'no_matching_rule', balanceId: 'a-api' },
        { index: 2, reason: 'zero_cost', balanceId: 'a-sto' },
      ]);
    });

    it('frees a hold of a balance whose product is no longer in the catalog (the usage is metered now, and never charged later)', () => {
      const priced = priceUsageBatch([usage('u1', 'carol', 'api_call', { holdId: 'c-old:job' })], byCustomer, products);
      expect(priced.charges).toEqual([zeroCharge(0, 'u1', 'c-old', 'carol', 'retired')]);
      expect(priced.skips).toEqual([{ index: 0, reason: 'product_not_found', balanceId: 'c-old' }]);
    });

    it('charges nothing to a balance the hold id does not name, nor for a hold id no hold could have', () => {
      // b-api is bob's: alice's usage cannot free it.
      for (const holdId of ['b-api:job', 'a-sto', 'a-sto:', ':job', 'a-sto:job:x', 7]) {
        const priced = priceUsageBatch([usage('u1', 'alice', 'stored', { gb: 0, holdId })], byCustomer, products);
        expect(priced.charges).toEqual([]);
        expect(priced.skips.map((s) => s.reason)).toEqual(['no_matching_rule', 'zero_cost']);
      }
    });
  });

  it('sends an event that one product finds invalid to the dead letters whole, charging no balance', () => {
    const priced = priceUsageBatch(
      [usage('u1', 'alice', 'stored', { gb: -2 }), usage('u2', 'alice', 'stored'), usage('u3', 'alice', 'api_call')],
      byCustomer,
      products,
    );
    expect(priced.invalid.map((item) => item.index)).toEqual([0, 1]);
    expect(priced.invalid[0]!.error).toBeInstanceOf(InvalidUsageEventError);
    expect(priced.invalid[0]!.error.message).toMatch(/negative/);
    expect(priced.invalid[1]!.error.message).toMatch(/missing/);
    expect(priced.charges.map((c) => [c.index, c.balance.balanceId])).toEqual([[2, 'a-api']]);
  });

  it('sends the usage of a customer with a balance on a product stored invalid to the dead letters, and prices the rest', () => {
    const broken = new StoredProductInvalidError('credit product storage as stored fails validation: credits must be positive');
    const priced = priceUsageBatch([usage('u1', 'alice', 'api_call'), usage('u2', 'bob', 'api_call')], byCustomer, products, new Map([['storage', broken]]));
    expect(priced.invalid).toEqual([{ index: 0, error: broken }]);
    expect(priced.charges.map((c) => [c.index, c.balance.balanceId])).toEqual([[1, 'b-api']]);
  });
});
