import { InvalidUsageEventError } from './errors';
import { parseUsageEvent } from './usageEvent';

const MARCH_1 = Date.UTC(2026, 2, 1, 12, 0, 0);

const json = (overrides: Record<string, unknown> = {}) => ({
  id: 'evt-1',
  customerId: 'cust-1',
  event: 'api_call',
  timestamp: '2026-03-01T12:00:00.000Z',
  properties: { tokens: 1500, model: 'gpt-x', cached: false, region: null },
  ...overrides,
});

const invalid = (record: unknown, message?: RegExp) => {
  expect(() => parseUsageEvent(record)).toThrow(InvalidUsageEventError);
  if (message) expect(() => parseUsageEvent(record)).toThrow(message);
};

describe('parseUsageEvent: valid records', () => {
  it('reads a JSON record with an ISO-8601 timestamp', () => {
    expect(parseUsageEvent(json())).toEqual({
      id: 'evt-1',
      customerId: 'cust-1',
      event: 'api_call',
      timestamp: MARCH_1,
      properties: { tokens: 1500, model: 'gpt-x', cached: false, region: null },
    });
  });

  it('reads ISO timestamps with an offset or without milliseconds', () => {
    expect(parseUsageEvent(json({ timestamp: '2026-03-01T13:00:00+01:00' })).timestamp).toBe(MARCH_1);
    expect(parseUsageEvent(json({ timestamp: '2026-03-01T12:00:00Z' })).timestamp).toBe(MARCH_1);
  });

  it('reads an Avro record: epoch-millis long, Date (timestamp-millis) or bigint', () => {
    expect(parseUsageEvent(json({ timestamp: MARCH_1 })).timestamp).toBe(MARCH_1);
    expect(parseUsageEvent(json({ timestamp: new Date(MARCH_1) })).timestamp).toBe(MARCH_1);
    expect(parseUsageEvent(json({ timestamp: BigInt(MARCH_1) })).timestamp).toBe(MARCH_1);
    expect(parseUsageEvent(json({ timestamp: 0 })).timestamp).toBe(0);
  });

  it('unwraps Avro union branches in properties', () => {
    const record = json({
      properties: {
        tokens: { long: 5 },
        ratio: { double: 0.25 },
        small: { int: 3 },
        approx: { float: 1.5 },
        model: { string: 'gpt-x' },
        cached: { boolean: true },
        region: null,
      },
    });
    expect(parseUsageEvent(record).properties).toEqual({
      tokens: 5,
      ratio: 0.25,
      small: 3,
      approx: 1.5,
      model: 'gpt-x',
      cached: true,
      region: null,
    });
  });

  it('keeps 64-bit integers exact as strings', () => {
    const big = 2n ** 60n + 1n;
    expect(parseUsageEvent(json({ properties: { n: big, m: { long: big } } })).properties).toEqual({
      n: '1152921504606846977',
      m: '1152921504606846977',
    });
  });

  it('treats missing or null properties as none', () => {
    expect(parseUsageEvent(json({ properties: undefined })).properties).toEqual({});
    expect(parseUsageEvent(json({ properties: null })).properties).toEqual({});
    const { properties: _omitted, ...withoutProperties } = json();
    expect(parseUsageEvent(withoutProperties).properties).toEqual({});
  });

  it('ignores fields it does not know', () => {
    expect(parseUsageEvent(json({ extra: 'x', schemaVersion: 3 }))).not.toHaveProperty('extra');
  });

  it('accepts texts and property counts up to the limits', () => {
    const long = 'x'.repeat(256);
    const properties: Record<string, unknown> = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`p${i}`, i]));
    properties[long] = 'named at the limit';
    delete properties.p0;
    const event = parseUsageEvent(json({ id: long, customerId: long, event: long, properties }));
    expect(event.id).toBe(long);
    expect(Object.keys(event.properties)).toHaveLength(256);
  });
});

describe('parseUsageEvent: invalid records', () => {
  it.each([null, undefined, 'evt', 42, [json()]])('rejects %p as a record', (record) => {
    invalid(record, /must be an object/);
  });

  it.each(['id', 'customerId', 'event'])('rejects a missing, non-string, empty or too long %s', (field) => {
    const without: Record<string, unknown> = json();
    delete without[field];
    invalid(without, new RegExp(field));
    invalid(json({ [field]: 42 }), new RegExp(field));
    invalid(json({ [field]: { string: 'evt-1' } }), new RegExp(field));
    invalid(json({ [field]: '' }), new RegExp(field));
    invalid(json({ [field]: 'x'.repeat(257) }), new RegExp(field));
  });

  it.each(['id', 'customerId', 'event'])('rejects a %s holding U+0000, which PostgreSQL cannot store', (field) => {
    invalid(json({ [field]: 'cust\u0000-1' }), new RegExp(`${field} contains the character U\\+0000`));
  });

  it.each<[string, unknown]>([
    ['missing', undefined],
    ['null', null],
    ['a boolean', true],
    ['a date without time', '2026-03-01'],
    ['digits as a string', '1772366400000'],
    ['an impossible date', '2026-13-45T00:00:00Z'],
    ['free text', 'yesterday'],
    ['fractional millis', 1.5],
    ['negative', -1],
    ['after 2200', Date.UTC(2200, 0, 1) + 1],
    ['NaN', NaN],
    ['an invalid Date', new Date(NaN)],
    ['an object', { long: MARCH_1 }],
  ])('rejects a timestamp that is %s', (_what, timestamp) => {
    invalid(json({ timestamp }), /timestamp/);
  });

  it.each<[string, unknown]>([
    ['an array', [1, 2]],
    ['a string', 'tokens=5'],
    ['a number', 5],
  ])('rejects properties that are %s', (_what, properties) => {
    invalid(json({ properties }), /properties/);
  });

  it.each<[string, unknown]>([
    ['a nested object', { model: 'x', tier: 'pro' }],
    ['a nested object with one field', { tier: 'pro' }],
    ['an empty object', {}],
    ['an array', ['a', 'b']],
    ['a one-element array', [5]],
    ['an Avro wrapper around an object', { long: { value: 5 } }],
    ['an Avro wrapper around an array', { string: ['x'] }],
    ['a function', () => 5],
    ['a symbol', Symbol('x')],
  ])('rejects a property that is %s', (_what, value) => {
    invalid(json({ properties: { nested: value } }), /nested/);
  });

  it.each([NaN, Infinity, -Infinity])('rejects the non-finite number %p, also inside an Avro wrapper', (value) => {
    invalid(json({ properties: { tokens: value } }), /tokens/);
    invalid(json({ properties: { tokens: { double: value } } }), /tokens/);
  });

  it('rejects more than 256 properties and property names longer than 256 characters', () => {
    const properties = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`p${i}`, i]));
    invalid(json({ properties }), /more than 256/);
    invalid(json({ properties: { ['k'.repeat(257)]: 1 } }), /256 characters/);
  });
});
