import type { CreditProduct } from '../shared/apiTypes';
import { bodyOf, draftOf, draftProblems, emptyDraft, emptyFilter, filterField } from './productDraft';

const product = (where: Record<string, string> | undefined, extra: Partial<CreditProduct> = {}): CreditProduct => ({
  id: 'api-credits',
  name: 'API credits',
  description: '',
  consumption: [{ event: 'api_call', credits: '1', ...(where !== undefined ? { where } : {}) }],
  lowBalanceThreshold: null,
  bundles: [],
  revision: 1,
  ...extra,
});

/** The product as PATCH takes it back: the answer without its id and revision. */
const fieldsOf = ({ id: _id, revision: _revision, ...fields }: CreditProduct) => fields;

describe("the product form's draft", () => {
  // Each rewritten by the form that joined filters with ", " and split them on ",": the rule then
  // matched no usage, and what it priced was recorded as no_matching_rule.
  it.each([
    ['a value with a comma', { region: 'eu-west,eu-central' }],
    ['a value with a comma and a space', { plan: 'Pro, annual' }],
    ['a value with surrounding spaces', { model: ' large' }],
    ["a property name with '='", { 'a=b': 'x' }],
    ['an empty value', { tier: '' }],
    ['several filters', { model: 'large ', region: 'eu,us', 'k=v, w': '=, ' }],
    ['a property named __proto__', JSON.parse('{"__proto__":"x","constructor":"y"}') as Record<string, string>],
  ])('sends back %s exactly as it was loaded', (_, where) => {
    const sent = bodyOf(draftOf(product(where)), false).consumption;
    expect(sent).toEqual([{ event: 'api_call', credits: '1', where }]);
    expect(JSON.stringify(sent[0]?.where)).toBe(JSON.stringify(where));
  });

  it('sends back a whole product as loaded when nothing was changed, and a rename changes only the name', () => {
    const loaded = product(undefined, {
      description: 'Metered calls ',
      lowBalanceThreshold: '2.5',
      consumption: [
        { event: 'api_call', credits: '1', where: { plan: 'Pro, annual' } },
        { event: ' tokens', credits: '0.001', perUnitOf: 'count', where: { model: ' large', 'a=b': 'x' } },
        { event: 'render', credits: '0' },
      ],
      bundles: [
        { id: 'starter', credits: '1000', price: { amount: '9.90', currency: 'EUR' }, purchaseOption: true },
        { id: 'wholesale', credits: '100000', price: { amount: '500', currency: 'EUR' }, purchaseOption: false },
      ],
    });
    expect(bodyOf(draftOf(loaded), false)).toEqual(fieldsOf(loaded));
    expect(bodyOf({ ...draftOf(loaded), name: 'Renamed' }, false)).toEqual({ ...fieldsOf(loaded), name: 'Renamed' });
  });

  it('sends a filter typed in its row as typed, and a new product with the id typed', () => {
    const draft = emptyDraft();
    draft.id = 'fresh';
    draft.name = 'Fresh';
    draft.consumption = [{ event: 'api_call', credits: '1', perUnitOf: '', where: [{ key: 'region', value: 'eu-west,eu-central' }, { key: ' a=b ', value: ' Pro, annual ' }] }];
    expect(bodyOf(draft, true)).toEqual({
      id: 'fresh',
      name: 'Fresh',
      description: '',
      lowBalanceThreshold: null,
      consumption: [{ event: 'api_call', credits: '1', where: { region: 'eu-west,eu-central', ' a=b ': ' Pro, annual ' } }],
      bundles: [],
    });
    // Editing sends no id: the product's stays.
    expect(bodyOf(draft, false)).not.toHaveProperty('id');
  });

  it('refuses to send a filter on no property, or one property filtered twice in a rule, naming the row', () => {
    const draft = draftOf(product({ model: 'large' }));
    expect(draftProblems(draft)).toEqual({});
    draft.consumption[0]!.where.push(emptyFilter(), { key: 'model', value: 'small' });
    draft.consumption.push({ event: 'other', credits: '1', perUnitOf: '', where: [{ key: 'model', value: 'large' }] });
    expect(draftProblems(draft)).toEqual({
      [filterField(0, 1)]: expect.stringContaining('name the property'),
      [filterField(0, 2)]: expect.stringContaining('"model" is filtered twice'),
    });
  });
});
