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
    expect(parseUsageEvent(json({ timestamp: '2026-03-01T10:30:00-01:30' })).timestamp).toBe(MARCH_1);
    expect(parseUsageEvent(json({ timestamp: '2026-03-01T13:00:00+0100' })).timestamp).toBe(MARCH_1);
    expect(parseUsageEvent(json({ timestamp: '2026-03-01t12:00z' })).timestamp).toBe(MARCH_1);
    expect(parseUsageEvent(json({ timestamp: '2026-03-01T12:00:00.250999Z' })).timestamp).toBe(MARCH_1 + 250);
    expect(parseUsageEvent(json({ timestamp: '2028-02-29T12:00:00Z' })).timestamp).toBe(Date.UTC(2028, 1, 29, 12));
  });

  it('reads an Avro record: epoch-millis long, Date (timestamp-millis) or bigint', () => {
    expect(parseUsageEvent(json({ timestamp: MARCH_1 })).timestamp).toBe(MARCH_1);
    expect(parseUsageEvent(json({ timestamp: new Date(MARCH_1) })).timestamp).toBe(MARCH_1);
    expect(parseUsageEvent(json({ timestamp: BigInt(MARCH_1) })).timestamp).toBe(MARCH_1);
  });

  it('refuses an epoch in seconds sent for milliseconds (a number before 1973-03-03), naming the mistake', () => {
    // 2026-03-03 in seconds: read as milliseconds it would be 1970-01-21.
    for (const timestamp of [1_772_546_530, BigInt(1_772_546_530), new Date(1_772_546_530), 0]) {
      expect(() => parseUsageEvent(json({ timestamp }))).toThrow(InvalidUsageEventError);
      expect(() => parseUsageEvent(json({ timestamp }))).toThrow(/epoch seconds.*milliseconds/);
    }
    // The first millisecond that cannot be seconds (seconds would be in the year 5138), and an ISO string of any year.
    expect(parseUsageEvent(json({ timestamp: 100_000_000_000 })).timestamp).toBe(100_000_000_000);
    expect(parseUsageEvent(json({ timestamp: '1971-01-01T00:00:00Z' })).timestamp).toBe(Date.UTC(1971, 0, 1));
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

  it('counts texts in characters, as the API schema and the subscriptions do: 256 emoji are an id, 257 are not', () => {
    const emoji = '😀'.repeat(256);
    expect(parseUsageEvent(json({ id: emoji, customerId: emoji, event: emoji }))).toMatchObject({ id: emoji, customerId: emoji, event: emoji });
    expect(() => parseUsageEvent(json({ customerId: '😀'.repeat(257) }))).toThrow('customerId must be 1-256 characters');
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
    // Date.parse rolls these over (2 March, the next day) instead of refusing them.
    ['30 February', '2026-02-30T00:00:00Z'],
    ['29 February of a common year', '2026-02-29T12:00:00Z'],
    ['hour 24', '2026-03-01T24:00:00Z'],
    ['an offset of 24 hours', '2026-03-01T12:00:00+24:00'],
    // Read in each host's own zone by Date.parse: one event, different instants on different hosts.
    ['without a zone', '2026-03-01T12:00:00'],
    ['without a zone, with milliseconds', '2026-03-01T12:00:00.250'],
    ['followed by more text', '2026-03-01T12:00:00Z and then some'],
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

  it.each(['id', 'customerId', 'event'])('rejects a %s holding a lone surrogate, which PostgreSQL and Avro cannot store', (field) => {
    for (const lone of ['\ud800', 'a\udfff', '\udc00\ud800', 'x\ud83d']) {
      invalid(json({ [field]: lone }), new RegExp(`${field} is not well-formed Unicode`));
    }
    // A surrogate pair is one character, and fine.
    expect(parseUsageEvent(json({ [field]: 'emoji \ud83d\ude00' }))[field as 'id']).toBe('emoji 😀');
  });

  it('rejects a lone surrogate in a property name or string value, even one no rule reads', () => {
    invalid(json({ properties: { ['k\ud800']: 1 } }), /property name is not well-formed/);
    invalid(json({ properties: { note: 'x\udc00' } }), /property note is not well-formed/);
    invalid(json({ properties: { note: { string: '\udbff' } } }), /property note is not well-formed/);
  });
});

describe('parseUsageEvent: properties no rule can read', () => {
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
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity inside an Avro wrapper', { double: -Infinity }],
  ])('leaves out a property that is %s, and keeps the event', (_what, value) => {
    const event = parseUsageEvent(json({ properties: { nested: value, tokens: 5 } }));
    expect(event.properties).toEqual({ tokens: 5 });
    expect(Object.hasOwn(event.properties, 'nested')).toBe(false);
  });

  it('keeps any number of properties and names of any length', () => {
    const properties = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`p${i}`, i]));
    properties['k'.repeat(1000)] = 1;
    expect(Object.keys(parseUsageEvent(json({ properties })).properties)).toHaveLength(1001);
  });

  it('keeps a property named __proto__ as data, not as the prototype', () => {
    const record = JSON.parse('{"id":"e","customerId":"c","event":"x","timestamp":1772546530000,"properties":{"__proto__":"5","constructor":null}}') as unknown;
    const event = parseUsageEvent(record);
    expect(Object.hasOwn(event.properties, '__proto__')).toBe(true);
    expect(event.properties['__proto__']).toBe('5');
    expect(Object.getPrototypeOf(event.properties)).toBe(Object.prototype);
  });
});

describe('parseUsageEvent: nesting', () => {
  /** `levels` arrays, one inside the other, built without recursion: what JSON.parse makes of `[[…]]`. */
  const nested = (levels: number): unknown => {
    let value: unknown = [];
    for (let level = 1; level < levels; level++) value = [value];
    return value;
  };
  /** An object chain instead: { a: { a: … } }, `levels` objects. */
  const chain = (levels: number): unknown => {
    let value: unknown = {};
    for (let level = 1; level < levels; level++) value = { a: value };
    return value;
  };
  const tooDeep = /nests objects and arrays deeper than 64 levels/;

  it('takes an event nested 64 levels deep (the event itself the first), its nested property left out', () => {
    // event (1) > properties (2) > blob: 62 more levels = 64.
    expect(parseUsageEvent(json({ properties: { blob: nested(62), tokens: 5 } })).properties).toEqual({ tokens: 5 });
    expect(parseUsageEvent(json({ extra: chain(63) })).id).toBe('evt-1');
  });

  it('refuses an event nested one level deeper, in a property or in a field it does not know', () => {
    invalid(json({ properties: { blob: nested(63) } }), tooDeep);
    invalid(json({ extra: chain(64) }), tooDeep);
    invalid(json({ extra: [1, 'x', { a: [null, nested(62)] }] }), tooDeep);
  });

  it('refuses an event nested a million levels deep as invalid, never overflowing the stack', () => {
    const deep = JSON.parse(`{"id":"e","customerId":"c","event":"x","timestamp":1772546530000,"properties":{"blob":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}}`) as unknown;
    expect(() => JSON.stringify(deep)).toThrow(RangeError); // what the API did with it before: a 500
    invalid(deep, tooDeep);
    invalid(json({ extra: chain(1_000_000) }), tooDeep);
  });

  it('takes an event wide rather than deep', () => {
    const wide = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`p${i}`, [[i]]]));
    expect(parseUsageEvent(json({ properties: { ...wide, tokens: 5 } })).properties).toEqual({ tokens: 5 });
  });
});
