import fc from 'fast-check';
import type { CreditProduct } from '../shared/apiTypes';
import { bodyOf, changeOf, compareDrafts, draftOf, draftProblems, emptyDraft, emptyFilter, filterField, PRODUCT_FIELDS, rebaseDraft, ruleField, type Draft, type ProductField } from './productDraft';

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

describe('a rule repeated whole', () => {
  const rule = (credits: string, where: Array<[string, string]>, perUnitOf = '') => ({ event: 'api_call', credits, perUnitOf, where: where.map(([key, value]) => ({ key, value })) });

  it('is refused before sending, naming both rules, as the API would: same event, per unit, filters in any order and credits by value', () => {
    const draft = emptyDraft();
    draft.consumption = [rule('1', [['model', 'large'], ['region', 'eu']]), rule('2', []), rule('1.00', [['region', 'eu'], ['model', 'large']])];
    expect(draftProblems(draft)).toEqual({
      [ruleField(2)]: 'rule 3 is the same as rule 1 (same event, per unit, filters and credits): every matching rule applies, so each event would be charged twice; remove one',
    });
  });

  it.each([
    ['other credits', rule('2', [['model', 'large']])],
    ['one filter fewer', rule('1', [])],
    ['another filter value', rule('1', [['model', 'small']])],
    ['a per unit', rule('1', [['model', 'large']], 'tokens')],
    ['another event', { ...rule('1', [['model', 'large']]), event: 'other' }],
  ])('is not what overlapping rules are: %s', (_what, other) => {
    const draft = emptyDraft();
    draft.consumption = [rule('1', [['model', 'large']]), other];
    expect(draftProblems(draft)).toEqual({});
  });
});

describe('a change of a product stored before the refusals of a repeated rule, a filter on no property and an unknown currency', () => {
  // As the API answers one stored before ba3083f: it still loads, and takes a change of its other fields.
  const stored = product(undefined, {
    consumption: [
      { event: 'api_call', credits: '1' },
      { event: 'api_call', credits: '1' },
      { event: 'api_call', credits: '2', where: { '': 'x' } },
    ],
    bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'ZZZ' }, purchaseOption: true }],
  });

  it('sends neither its rules nor its bundles when they are as read, and refuses nothing of them: a rename is taken', () => {
    const renamed = { ...draftOf(stored), name: 'Renamed' };
    const sent = changeOf(renamed, stored);
    expect(sent).toEqual({ name: 'Renamed', description: '', lowBalanceThreshold: null });
    expect(draftProblems(renamed, sent)).toEqual({});
  });

  it('sends the rules whole once one changes, and then refuses the repeated rule and the filter on no property, naming the rule', () => {
    const draft = draftOf(stored);
    draft.consumption[2]!.credits = '3';
    const sent = changeOf(draft, stored);
    expect(sent).toEqual({ name: 'API credits', description: '', lowBalanceThreshold: null, consumption: bodyOf(draft, false).consumption });
    expect(draftProblems(draft, sent)).toEqual({
      [ruleField(1)]: expect.stringContaining('rule 2 is the same as rule 1'),
      [filterField(2, 0)]: expect.stringContaining('name the property'),
    });
    // Mended: the rule repeated removed, the filter named.
    draft.consumption.splice(1, 1);
    draft.consumption[1]!.where[0]!.key = 'region';
    expect(draftProblems(draft, changeOf(draft, stored))).toEqual({});
  });

  it('sends the bundles whole once one changes (the API then says which currency it refuses), and the rules not', () => {
    const draft = draftOf(stored);
    draft.bundles[0]!.amount = '19.90';
    const sent = changeOf(draft, stored);
    expect(sent).toEqual({ name: 'API credits', description: '', lowBalanceThreshold: null, bundles: [{ id: 'starter', credits: '100', price: { amount: '19.90', currency: 'ZZZ' }, purchaseOption: true }] });
    expect(draftProblems(draft, sent)).toEqual({});
  });

  it('sends what differs from the document as stored, so that a stored product failing validation is repaired by a save of the form as it shows it', () => {
    const broken: unknown = { ...stored, consumption: [{ event: 'render', credits: 2 }], bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } }] };
    expect(changeOf(draftOf(broken), broken)).toEqual({
      name: 'API credits',
      description: '',
      lowBalanceThreshold: null,
      consumption: [{ event: 'render', credits: '2' }],
      bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' }, purchaseOption: true }],
    });
  });

  it('checks every rule of a product being created', () => {
    const draft = { ...draftOf(stored), id: '' };
    expect(draftProblems(draft)).toEqual({ [ruleField(1)]: expect.stringContaining('rule 2 is the same as rule 1'), [filterField(2, 0)]: expect.stringContaining('name the property') });
  });
});

describe('a draft saved after someone else changed the product (412): the three-way compare and the rebase', () => {
  const base = draftOf(
    product(
      { region: 'eu' },
      {
        description: 'Metered calls',
        lowBalanceThreshold: '10',
        bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' }, purchaseOption: true }],
      },
    ),
  );
  const changed = (change: Partial<Draft>): Draft => ({ ...structuredClone(base), ...change });

  it('names the fields each side changed, and as conflicting those both changed to different values', () => {
    const mine = changed({ name: 'Mine', description: 'Mine too', lowBalanceThreshold: '5' });
    const current = changed({ description: 'Theirs', lowBalanceThreshold: '5', consumption: [{ event: 'api_call', credits: '3', perUnitOf: '', where: [{ key: 'region', value: 'eu' }] }] });
    expect(compareDrafts(base, mine, current)).toEqual({
      mine: ['name', 'description', 'lowBalanceThreshold'],
      theirs: ['description', 'lowBalanceThreshold', 'consumption'],
      // The same warning limit set by both is no conflict.
      conflicts: ['description'],
    });
  });

  it("applies the operator's changes to the current version: theirs stay where the operator changed nothing, the operator's win where both changed", () => {
    const mine = changed({ name: 'Mine', description: 'Mine too' });
    const theirRules = [{ event: 'api_call', credits: '3', perUnitOf: '', where: [{ key: 'region', value: 'eu, us' }] }];
    const current = changed({ description: 'Theirs', consumption: theirRules });
    expect(rebaseDraft(base, mine, current)).toEqual({ ...current, name: 'Mine', description: 'Mine too', consumption: theirRules });
  });

  it('tells a changed filter, bundle or rule from an unchanged one, whatever the order of the keys', () => {
    const mine = changed({});
    mine.consumption[0]!.where[0]!.value = 'eu ';
    mine.bundles[0] = { purchaseOption: true, currency: 'EUR', amount: '9.90', credits: '100', id: 'starter' };
    expect(compareDrafts(base, mine, base)).toEqual({ mine: ['consumption'], theirs: [], conflicts: [] });
  });

  /** Drafts over few values, so that two sides often write the same one. */
  const text = fc.constantFrom('', 'a', 'b', ' a', 'a,b');
  const draftArbitrary: fc.Arbitrary<Draft> = fc.record({
    id: fc.constant('api-credits'),
    name: text,
    description: text,
    lowBalanceThreshold: fc.constantFrom('', '1', '2.5'),
    consumption: fc.array(fc.record({ event: text, credits: fc.constantFrom('1', '2'), perUnitOf: text, where: fc.array(fc.record({ key: text, value: text }), { maxLength: 2 }) }), { maxLength: 2 }),
    bundles: fc.array(fc.record({ id: text, credits: fc.constantFrom('1', '2'), amount: fc.constantFrom('1', '9.90'), currency: fc.constantFrom('EUR', 'USD'), purchaseOption: fc.boolean() }), { maxLength: 2 }),
  });
  /** `draft` with the fields `from` has in `fields`. */
  const withFields = (draft: Draft, from: Draft, fields: readonly ProductField[]): Draft => {
    const result = structuredClone(draft);
    for (const field of fields) Object.assign(result, { [field]: structuredClone(from[field]) });
    return result;
  };
  const sides = fc.tuple(draftArbitrary, draftArbitrary, draftArbitrary, fc.subarray([...PRODUCT_FIELDS]), fc.subarray([...PRODUCT_FIELDS])).map(([original, mineFrom, theirsFrom, mineFields, theirFields]) => ({
    base: original,
    mine: withFields(original, mineFrom, mineFields),
    current: withFields(original, theirsFrom, theirFields),
  }));

  it('rebases a draft that changed nothing to the current version, exactly', () => {
    fc.assert(
      fc.property(sides, ({ base: original, current }) => {
        expect(rebaseDraft(original, structuredClone(original), current)).toEqual(current);
        expect(compareDrafts(original, structuredClone(original), current).mine).toEqual([]);
      }),
    );
  });

  it("keeps every field the operator changed, and every other field as the current version has it", () => {
    fc.assert(
      fc.property(sides, ({ base: original, mine, current }) => {
        const rebased = rebaseDraft(original, mine, current);
        const { mine: changedByMe, theirs, conflicts } = compareDrafts(original, mine, current);
        for (const field of PRODUCT_FIELDS) expect(rebased[field]).toEqual(changedByMe.includes(field) ? mine[field] : current[field]);
        // Changed only by the operator: what the operator typed survives.
        for (const field of changedByMe.filter((field) => !theirs.includes(field))) expect(rebased[field]).toEqual(mine[field]);
        for (const field of conflicts) expect(changedByMe.includes(field) && theirs.includes(field) && JSON.stringify(mine[field]) !== JSON.stringify(current[field])).toBe(true);
        // Rebased again onto the same version, the draft changes nothing more.
        expect(rebaseDraft(current, rebased, current)).toEqual(rebased);
      }),
    );
  });
});

describe('a draft of a stored document that fails validation, to repair', () => {
  it('reads whatever the document holds, as text, where the API would refuse it, and leaves out what is no product field', () => {
    const stored: unknown = {
      id: 'broken',
      name: 'Broken',
      consumption: [{ event: 'render', credits: 2, where: { tier: 'gold' } }, 'not a rule'],
      lowBalanceThreshold: 5,
      bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'eur' }, purchaseOption: false }, { id: 'nothing' }],
      extra: true,
    };
    expect(draftOf(stored)).toEqual({
      id: 'broken',
      name: 'Broken',
      description: '',
      lowBalanceThreshold: '5',
      consumption: [{ event: 'render', credits: '2', perUnitOf: '', where: [{ key: 'tier', value: 'gold' }] }],
      bundles: [
        { id: 'starter', credits: '100', amount: '9.90', currency: 'eur', purchaseOption: false },
        { id: 'nothing', credits: '', amount: '', currency: '', purchaseOption: true },
      ],
    });
    expect(draftOf('not a product')).toEqual({ ...emptyDraft(), consumption: [] });
  });
});
