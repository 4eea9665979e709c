import { creditProductFromDto, creditProductFromRequest, CreditProductDto, creditProductToDto, isValidIdentifier } from './creditProduct';
import { InvalidAmountError, ValidationError } from './errors';

const dto = (overrides: Partial<CreditProductDto> = {}): CreditProductDto => ({
  id: 'llm-tokens',
  name: 'LLM tokens',
  description: 'Prepaid tokens',
  consumption: [
    { event: 'completion', credits: '0.002', perUnitOf: 'tokens', where: { model: 'large' } },
    { event: 'completion', credits: '1' },
  ],
  lowBalanceThreshold: '12.5',
  bundles: [
    { id: 'starter', credits: '1000', price: { amount: '9.99', currency: 'EUR' }, purchaseOption: true },
    { id: 'pro', credits: '15000.5', price: { amount: '99', currency: 'USD' }, purchaseOption: false },
  ],
  ...overrides,
});

describe('credit products', () => {
  it('reads amounts as exact micro-credits', () => {
    expect(creditProductFromDto(dto())).toEqual({
      id: 'llm-tokens',
      name: 'LLM tokens',
      description: 'Prepaid tokens',
      consumption: [
        { event: 'completion', credits: 2_000n, perUnitOf: 'tokens', where: { model: 'large' } },
        { event: 'completion', credits: 1_000_000n },
      ],
      lowBalanceThreshold: 12_500_000n,
      bundles: [
        { id: 'starter', credits: 1_000_000_000n, price: { amount: '9.99', currency: 'EUR' }, purchaseOption: true },
        { id: 'pro', credits: 15_000_500_000n, price: { amount: '99', currency: 'USD' }, purchaseOption: false },
      ],
    });
  });

  it('counts a name in characters as the API schema does: 256 emoji fit, 257 do not', () => {
    expect(creditProductFromDto(dto({ name: '😀'.repeat(256) })).name).toHaveLength(512);
    expect(() => creditProductFromDto(dto({ name: '😀'.repeat(257) }))).toThrow('name must be a non-empty string of at most 256 characters');
  });

  it('round-trips through its JSON form', () => {
    expect(creditProductToDto(creditProductFromDto(dto()))).toEqual(dto());
    const bare = dto({ lowBalanceThreshold: null, bundles: [], consumption: [{ event: 'ping', credits: '0' }] });
    expect(creditProductToDto(creditProductFromDto(bare))).toEqual(bare);
  });

  it('offers a bundle stored before purchase options existed on the portal', () => {
    const stored = dto({ bundles: [{ id: 'old', credits: '5', price: { amount: '1', currency: 'EUR' } }] });
    expect(creditProductFromDto(stored).bundles[0]?.purchaseOption).toBe(true);
    expect(creditProductToDto(creditProductFromDto(stored)).bundles[0]).toEqual({ ...stored.bundles[0], purchaseOption: true });
  });

  it('keeps a where of its own that cannot change: computeCost reads each where once', () => {
    const source = dto();
    const where = creditProductFromDto(source).consumption[0]!.where!;
    expect(Object.isFrozen(where)).toBe(true);
    expect(where).not.toBe(source.consumption[0]!.where);
  });

  it('drops an empty where', () => {
    const product = creditProductFromDto(dto({ consumption: [{ event: 'ping', credits: '1', where: {} }] }));
    expect(product.consumption[0]).not.toHaveProperty('where');
  });

  it.each<[string, Partial<CreditProductDto>, typeof ValidationError]>([
    ['an invalid id', { id: '-starts-with-dash' }, ValidationError],
    ['an empty name', { name: ' ' }, ValidationError],
    ['negative rule credits', { consumption: [{ event: 'x', credits: '-1' }] }, InvalidAmountError],
    ['rule credits with 7 decimals', { consumption: [{ event: 'x', credits: '0.0000001' }] }, InvalidAmountError],
    ['an empty rule event', { consumption: [{ event: '', credits: '1' }] }, ValidationError],
    ['an empty perUnitOf', { consumption: [{ event: 'x', credits: '1', perUnitOf: '' }] }, ValidationError],
    ['a non-string where value', { consumption: [{ event: 'x', credits: '1', where: { n: 1 as unknown as string } }] }, ValidationError],
    ['a negative threshold', { lowBalanceThreshold: '-1' }, InvalidAmountError],
    ['a zero-credit bundle', { bundles: [{ id: 'b', credits: '0', price: { amount: '1', currency: 'EUR' } }] }, InvalidAmountError],
    ['a bad currency', { bundles: [{ id: 'b', credits: '1', price: { amount: '1', currency: 'eur' } }] }, ValidationError],
    ['a negative price', { bundles: [{ id: 'b', credits: '1', price: { amount: '-1', currency: 'EUR' } }] }, ValidationError],
    [
      'a bundle id used twice',
      {
        bundles: [
          { id: 'b', credits: '1', price: { amount: '1', currency: 'EUR' } },
          { id: 'b', credits: '2', price: { amount: '2', currency: 'EUR' } },
        ],
      },
      ValidationError,
    ],
    // Stored JSON of the wrong shape (a hand edit): a ValidationError naming the part, never a TypeError.
    ['consumption that is not a list', { consumption: {} as unknown as CreditProductDto['consumption'] }, ValidationError],
    ['a rule that is not an object', { consumption: [null] as unknown as CreditProductDto['consumption'] }, ValidationError],
    ['a where that is not an object', { consumption: [{ event: 'x', credits: '1', where: 'model' as unknown as Record<string, string> }] }, ValidationError],
    ['bundles that are not a list', { bundles: null as unknown as CreditProductDto['bundles'] }, ValidationError],
    ['a bundle without its price', { bundles: [{ id: 'b', credits: '1' } as unknown as CreditProductDto['bundles'][number]] }, ValidationError],
    ['a price amount that is a number', { bundles: [{ id: 'b', credits: '1', price: { amount: 1 as unknown as string, currency: 'EUR' } }] }, ValidationError],
    ['a purchaseOption that is not a boolean', { bundles: [{ id: 'b', credits: '1', price: { amount: '1', currency: 'EUR' }, purchaseOption: 'yes' as unknown as boolean }] }, ValidationError],
  ])('rejects %s', (_what, overrides, errorClass) => {
    expect(() => creditProductFromDto(dto(overrides))).toThrow(errorClass);
  });

  it.each([null, [], 'product', 42])('rejects a stored document that is not an object at all (%p) with a ValidationError, never a TypeError', (stored) => {
    expect(() => creditProductFromDto(stored as unknown as CreditProductDto)).toThrow(new ValidationError('the product must be an object'));
  });

  describe('as a request writes it (created, or the fields a change gives)', () => {
    const rule = { event: 'completion', credits: '1', perUnitOf: 'tokens', where: { model: 'large', region: 'eu' } };

    it('refuses a filter on a property with no name, naming the rule\'s where', () => {
      expect(() => creditProductFromRequest(dto({ consumption: [{ event: 'x', credits: '1', where: { '': 'x' } }] }))).toThrow(
        new ValidationError('consumption[0].where has a property with no name: a filter on no property matches no usage event; name the property or remove the filter'),
      );
    });

    it('refuses a rule identical to another (event, per unit, filters in any order, credits by value), naming both', () => {
      const twin = { ...rule, credits: '1.000', where: { region: 'eu', model: 'large' } };
      expect(() => creditProductFromRequest(dto({ consumption: [{ event: 'other', credits: '1' }, rule, twin] }))).toThrow(
        new ValidationError(
          'consumption[2] is the same rule as consumption[1] (same event, per unit, filters and credits): every matching rule applies, so each event would be charged twice; remove one',
        ),
      );
      expect(() => creditProductFromRequest(dto({ consumption: [{ event: 'e', credits: '1' }, { event: 'e', credits: '1' }] }))).toThrow(/consumption\[1\] is the same rule as consumption\[0\]/);
    });

    it.each([
      ['another event', { event: 'other' }],
      ['other credits', { credits: '2' }],
      ['no per unit', { perUnitOf: undefined }],
      ['another per unit', { perUnitOf: 'count' }],
      ['one filter fewer', { where: { model: 'large' } }],
      ['another filter value', { where: { model: 'large', region: 'us' } }],
    ])('accepts rules that overlap but differ: %s', (_what, change) => {
      const other = JSON.parse(JSON.stringify({ ...rule, ...change })) as CreditProductDto['consumption'][number];
      expect(creditProductFromRequest(dto({ consumption: [rule, other] })).consumption).toHaveLength(2);
    });

    it('refuses a currency ISO 4217 does not have, and takes those it has', () => {
      const priced = (currency: string) => dto({ bundles: [{ id: 'b', credits: '1', price: { amount: '1', currency } }] });
      expect(() => creditProductFromRequest(priced('ZZZ'))).toThrow(new ValidationError('bundles[0].price.currency "ZZZ" is not an ISO 4217 currency code, such as "EUR"'));
      for (const currency of ['EUR', 'USD', 'JPY', 'CHF']) expect(creditProductFromRequest(priced(currency)).bundles[0]!.price.currency).toBe(currency);
    });

    it('holds a change to these only in the fields it gives: a rename of a product stored with them is taken', () => {
      const stored = dto({ consumption: [{ event: 'e', credits: '1', where: { '': 'x' } }, { event: 'e', credits: '1' }, { event: 'e', credits: '1' }], bundles: [{ id: 'b', credits: '1', price: { amount: '1', currency: 'ZZZ' } }] });
      expect(creditProductFromRequest({ ...stored, name: 'Renamed' }, { name: 'Renamed' }).name).toBe('Renamed');
      expect(() => creditProductFromRequest(stored, { consumption: stored.consumption })).toThrow(/consumption\[0\]\.where/);
      expect(() => creditProductFromRequest(stored, { bundles: stored.bundles })).toThrow(/"ZZZ"/);
    });

    it('leaves products stored with them loading and pricing as before: read, they are what was stored', () => {
      const stored = dto({
        consumption: [{ event: 'e', credits: '1' }, { event: 'e', credits: '1' }, { event: 'e', credits: '1', where: { '': 'x' } }],
        bundles: [{ id: 'b', credits: '1', price: { amount: '1', currency: 'ZZZ' }, purchaseOption: true }],
      });
      expect(creditProductToDto(creditProductFromDto(stored))).toEqual(stored);
    });
  });

  it('accepts identifiers of letters, digits, "_", ".", ":" and "-" up to 128 characters', () => {
    expect(isValidIdentifier('a')).toBe(true);
    expect(isValidIdentifier('Prod_1.v2:eu-west')).toBe(true);
    expect(isValidIdentifier('a'.repeat(128))).toBe(true);
    expect(isValidIdentifier('a'.repeat(129))).toBe(false);
    expect(isValidIdentifier('')).toBe(false);
    expect(isValidIdentifier('has space')).toBe(false);
    expect(isValidIdentifier(42)).toBe(false);
  });
});
