import type { OpenBalance } from '@tally/domain';
import fc from 'fast-check';

/** For property specs: any open balance, ids and names of any characters, amounts beyond 64 bits, with or without holds. */
export function arbitraryOpenBalance(): fc.Arbitrary<OpenBalance> {
  const micros = fc.bigInt({ min: -(10n ** 22n), max: 10n ** 22n });
  return fc
    .record({
      balanceId: fc.string(),
      customerId: fc.string(),
      productId: fc.string(),
      name: fc.string(),
      lowBalanceThreshold: fc.option(micros, { nil: null }),
      balance: micros,
      held: micros,
      holds: fc.dictionary(fc.string(), fc.record({ credits: micros, expiresAt: fc.string(), reference: fc.option(fc.string(), { nil: null }) })),
      overdraftLimit: micros,
      warned: fc.boolean(),
      updatedAt: fc.string(),
    })
    .map((fields): OpenBalance => ({ status: 'open', ...fields }));
}
