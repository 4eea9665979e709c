import type { CreditProduct } from '../shared/apiTypes';
import { bundlesWithPricesSummary } from './productSummary';

const product = (bundles: CreditProduct['bundles']): CreditProduct => ({
  id: 'api-credits',
  name: 'API credits',
  description: '',
  consumption: [{ event: 'api_call', credits: '1' }],
  lowBalanceThreshold: null,
  bundles,
  revision: 1,
});

describe("a product's bundles in one line, with their prices", () => {
  it('names each bundle, says which is not offered, then gives their prices in the same order', () => {
    const summary = bundlesWithPricesSummary(
      product([
        { id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } },
        { id: 'bulk', credits: '10000', price: { amount: '1250', currency: 'USD' }, purchaseOption: false },
      ]),
    );
    expect(summary).toBe('starter, bulk (not offered): 9.90 EUR, 1,250 USD');
  });

  it('is empty for a product without bundles, for the caller to say so its own way', () => {
    expect(bundlesWithPricesSummary(product([]))).toBe('');
  });
});
