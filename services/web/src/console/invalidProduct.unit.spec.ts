import { ApiError } from '../shared/apiClient';
import { invalidProductOf } from './invalidProduct';
import { draftOf } from './productDraft';

const reason = 'bundles[0].price.currency must be an ISO 4217 code such as "EUR"';
const message = `credit product broken-b as stored fails validation: ${reason}; a change of that field repairs it`;

describe('a stored product that fails validation, from the API\'s 409, to repair it', () => {
  it('is the document as stored (what credit_products holds, a hand edit included), its revision and why', () => {
    const stored = { id: 'broken-b', name: 'Edited by hand', bundles: [{ id: 'starter', credits: 100, price: { amount: '9.90', currency: 'eur' } }] };
    const read = invalidProductOf(new ApiError(409, 'stored_product_invalid', message, { error: 'stored_product_invalid', message, revision: 3, reason, stored }));
    expect(read).toEqual({ revision: 3, reason, draft: draftOf(stored), stored });
    // Every field as stored, whatever its type: the operator sees what is wrong and corrects it.
    expect(read?.draft).toMatchObject({ name: 'Edited by hand', bundles: [{ credits: '100', currency: 'eur', amount: '9.90' }] });
  });

  it('seeds the form from a document of the wrong shapes, each field as text', () => {
    const stored = { id: 'broken-b', name: 7, consumption: 'none', bundles: [{ id: 'starter', price: '9.90' }] };
    const read = invalidProductOf(new ApiError(409, 'stored_product_invalid', message, { error: 'stored_product_invalid', message, revision: 1, reason, stored }));
    expect(read).toEqual({ revision: 1, reason, draft: draftOf(stored), stored });
    expect(read?.draft).toMatchObject({ id: 'broken-b', name: '7', consumption: [], bundles: [{ id: 'starter', amount: '' }] });
  });

  it('is nothing for any other failure, or a 409 that carries no stored document (an API from before it did)', () => {
    expect(invalidProductOf(new ApiError(404, 'product_not_found', 'no credit product with id "x"'))).toBeUndefined();
    expect(invalidProductOf(new ApiError(409, 'stored_product_invalid', message, { error: 'stored_product_invalid', message }))).toBeUndefined();
    expect(invalidProductOf(new Error('network down'))).toBeUndefined();
  });
});
