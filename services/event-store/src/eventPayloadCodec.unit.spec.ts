import fc from 'fast-check';
import { decodePayload, encodePayload, toEventShape } from './eventPayloadCodec';
import type { JsonObject } from './eventStore';

/**
 * The encoding as its definitions state it (017's es_is_compact_decimal and es_iso_millis, as
 * regular expressions and a Date round trip): the store's encoder, written for speed, must
 * give the same shape keys and bodies byte for byte, or shapes would be registered twice.
 */
const COMPACT_DECIMAL = /^-?(?:0|[1-9]\d*)(?:\.\d{0,5}[1-9])?$/;
const ISO_MILLIS = /^[1-9]\d{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$/;
function referenceEncode(type: string, data: JsonObject): { shapeKey: string; body: string } {
  const parts: string[] = [];
  let base: number | undefined;
  const pack = (object: JsonObject): unknown[] =>
    Object.entries(object).flatMap(([key, value]) => {
      if (value === undefined) return [];
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return [[key, pack(value)]];
      if (value === null) return [[key, 'z']];
      if (typeof value === 'string' && COMPACT_DECIMAL.test(value) && value !== '-0' && value.replace(/\D/g, '').length <= 15) {
        parts.push(value);
        return [[key, 'n']];
      }
      const millis = typeof value === 'string' && ISO_MILLIS.test(value) ? Date.parse(value) : Number.NaN;
      if (!Number.isNaN(millis) && new Date(millis).toISOString() === value) {
        parts.push(String(base === undefined ? millis : millis - base));
        base ??= millis;
        return [[key, 't']];
      }
      parts.push(JSON.stringify(value));
      return [[key, 'v']];
    });
  const shape = [type, pack(data)];
  return { shapeKey: JSON.stringify(shape), body: `[${parts.join(',')}]` };
}

const roundTrip = (type: string, data: JsonObject) => {
  const { shapeKey, body } = encodePayload(type, data);
  return decodePayload(toEventShape(JSON.parse(shapeKey)), body);
};

describe('the compact payload encoding', () => {
  it('writes a usage charge as its values alone: amounts as numbers, times as milliseconds, nulls in the shape', () => {
    const data = {
      credits: '1.5',
      source: 'usage',
      reason: null,
      usage: { eventId: 'u-1', event: 'api_call', timestamp: '2026-11-30T11:05:28.123Z', quantity: '500' },
      balanceAfter: '999998.5',
      occurredAt: '2026-11-30T11:05:29.000Z',
    };
    const { shapeKey, body } = encodePayload('CreditConsumed', data);
    expect(JSON.parse(shapeKey)).toEqual([
      'CreditConsumed',
      [['credits', 'n'], ['source', 'v'], ['reason', 'z'], ['usage', [['eventId', 'v'], ['event', 'v'], ['timestamp', 't'], ['quantity', 'n']]], ['balanceAfter', 'n'], ['occurredAt', 't']],
    ]);
    const millis = Date.parse('2026-11-30T11:05:28.123Z');
    // The first time in full, the later ones after it.
    expect(body).toBe(`[1.5,"usage","u-1","api_call",${millis},500,999998.5,877]`);
    expect(roundTrip('CreditConsumed', data)).toEqual({ type: 'CreditConsumed', data });
  });

  it('keeps as text what a number or a time would not spell back the same', () => {
    const data = {
      zeros: '1.50',
      leading: '007',
      negativeZero: '-0',
      long: '1234567890123456',
      tiny: '0.0000001',
      exponent: '1e3',
      noMillis: '2026-11-30T11:05:28Z',
      offset: '2026-11-30T11:05:28.123+01:00',
      impossible: '2026-02-30T00:00:00.000Z',
      number: 1.5,
      flag: true,
      list: ['1.5', { a: 1 }],
      early: '1999-01-01T00:00:00.000Z',
      late: '2100-01-01T00:00:00.000Z',
    };
    const { shapeKey } = encodePayload('Edge', data);
    const kinds = (JSON.parse(shapeKey) as [string, [string, string][]])[1].map(([, kind]) => kind);
    expect(kinds).toEqual([...Array(12).fill('v'), 't', 't']);
    expect(roundTrip('Edge', data)).toEqual({ type: 'Edge', data });
  });

  it('gives two payloads of one structure one shape', () => {
    const a = encodePayload('T', { amount: '1', at: '2026-01-01T00:00:00.000Z', nested: { x: 'a' } });
    const b = encodePayload('T', { amount: '250.75', at: '1999-12-31T23:59:59.999Z', nested: { x: 'b' } });
    expect(a.shapeKey).toBe(b.shapeKey);
    expect(a.body).not.toBe(b.body);
  });

  it('keeps "__proto__" an ordinary key, as JSON.parse does', () => {
    const data = JSON.parse('{"__proto__": {"polluted": "yes"}, "a": "1"}') as JsonObject;
    const decoded = roundTrip('T', data).data;
    expect(Object.keys(decoded)).toEqual(['__proto__', 'a']);
    expect(({} as { polluted?: string }).polluted).toBeUndefined();
  });

  it('rejects a body that does not fit its shape', () => {
    const { shapeKey } = encodePayload('T', { a: 'x', b: 'y' });
    expect(() => decodePayload(toEventShape(JSON.parse(shapeKey)), '["x"]')).toThrow(/fewer values/);
    expect(() => decodePayload(toEventShape(JSON.parse(shapeKey)), '["x","y","z"]')).toThrow(/3 values/);
    expect(() => toEventShape(['T', [['a', 'q']]])).toThrow(/not an event shape/);
  });

  it('encodes as the definitions say, byte for byte: near-miss amounts and times included', () => {
    const decimal = fc
      .tuple(fc.constantFrom('', '-'), fc.stringMatching(/^[0-9]{1,17}$/), fc.option(fc.stringMatching(/^[0-9]{0,8}$/)))
      .map(([sign, whole, fraction]) => `${sign}${whole}${fraction === null ? '' : `.${fraction}`}`);
    const time = fc
      .tuple(
        fc.date({ min: new Date('0900-01-01T00:00:00.000Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }),
        fc.nat(23),
        fc.constantFrom('0', '9', '3', '-', ':', '.', 'T', 'Z', 'x', '1'),
      )
      // Each time whole, or with one character replaced: a day past its month's end, a 24th hour...
      .map(([date, at, by]) => {
        const text = date.toISOString();
        return at % 3 === 0 ? text : `${text.slice(0, at)}${by}${text.slice(at + 1)}`;
      });
    const leaf = fc.oneof(decimal, time, fc.string(), fc.jsonValue(), fc.constantFrom('-0', '0', '-', '.5', '1.', '2026-02-29T00:00:00.000Z', '2024-02-29T00:00:00.000Z'));
    const object = fc.letrec((tie) => ({
      object: fc.dictionary(fc.string(), fc.oneof({ depthSize: 'small' }, leaf, tie('object')), { maxKeys: 6 }),
    })).object as fc.Arbitrary<JsonObject>;
    fc.assert(
      fc.property(fc.string(), object, (type, data) => {
        expect(encodePayload(type, data)).toEqual(referenceEncode(type, data));
      }),
      { numRuns: 2000 },
    );
  });

  it('writes as a number only amounts that Number spells back exactly (the encoder checks the form, not the round trip)', () => {
    const kindOf = (text: string) => (JSON.parse(encodePayload('T', { amount: text }).shapeKey) as [string, [string, string][]])[1][0]![1];
    const edges = ['999999999999999', '-999999999999999', '0.000001', '-0.000001', '123456789.123456', '-999999999.999999', '0.999999', '1000000000000000'];
    for (const text of edges) {
      if (kindOf(text) === 'n') expect(String(Number(text))).toBe(text);
    }
    expect(edges.map(kindOf)).toEqual(['n', 'n', 'n', 'n', 'n', 'n', 'n', 'v']);
    fc.assert(
      fc.property(fc.stringMatching(/^-?(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{0,5}[1-9])?$/), (text) => {
        const compact = text !== '-0' && text.replace(/\D/g, '').length <= 15;
        expect(kindOf(text)).toBe(compact ? 'n' : 'v');
        if (compact) expect(String(Number(text))).toBe(text);
        expect(roundTrip('T', { amount: text }).data.amount).toBe(text);
      }),
      { numRuns: 5_000 },
    );
    // And the long ones most of all: up to 15 digits, 0 to 6 of them after the point, as micro-credits are.
    const longDecimal = fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 15n - 1n }), fc.nat(6), fc.boolean()).map(([digits, scale, negative]) => {
      const padded = digits.toString().padStart(scale + 1, '0');
      const whole = padded.slice(0, padded.length - scale);
      const fraction = padded.slice(padded.length - scale).replace(/0+$/, '');
      const text = fraction === '' ? whole : `${whole}.${fraction}`;
      return negative && text !== '0' ? `-${text}` : text;
    });
    fc.assert(
      fc.property(longDecimal, (text) => {
        expect(kindOf(text)).toBe('n');
        expect(String(Number(text))).toBe(text);
      }),
      { numRuns: 20_000 },
    );
  });

  it('finds a shape met before by its walk, never another: few keys and kinds in every order, nested or not, byte for byte', () => {
    // Shapes repeat here (the encoder's trie of steps is what is tested): the same keys in
    // another order, a value of another kind, an object where a scalar was, an empty object.
    const leaf = fc.constantFrom<JsonObject[string]>('1', '2.5', 'x', null, 7, true, '2026-01-01T00:00:00.000Z', [], '__proto__');
    const object = fc.letrec((tie) => ({
      object: fc.dictionary(fc.constantFrom('a', 'b', 'c', '__proto__', ''), fc.oneof({ depthSize: 'small' }, leaf, tie('object')), { maxKeys: 4 }),
    })).object as fc.Arbitrary<JsonObject>;
    fc.assert(
      fc.property(fc.constantFrom('A', 'B'), object, (type, data) => {
        expect(encodePayload(type, data)).toEqual(referenceEncode(type, data));
      }),
      { numRuns: 3000 },
    );
  });

  it('decodes whatever it encodes (any JSON object, amounts and times included)', () => {
    const decimal = fc
      .tuple(fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }), fc.integer({ min: 0, max: 8 }))
      .map(([units, scale]) => {
        const text = (units < 0n ? -units : units).toString().padStart(scale + 1, '0');
        return `${units < 0n ? '-' : ''}${scale === 0 ? text : `${text.slice(0, -scale)}.${text.slice(-scale)}`}`;
      });
    const time = fc.date({ min: new Date('0999-01-01T00:00:00.000Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }).map((d) => d.toISOString());
    const leaf = fc.oneof(fc.jsonValue(), decimal, time, fc.string());
    const object = fc.letrec((tie) => ({
      object: fc.dictionary(fc.string(), fc.oneof({ depthSize: 'small' }, leaf, tie('object')), { maxKeys: 6 }),
    })).object as fc.Arbitrary<JsonObject>;
    fc.assert(
      fc.property(fc.string(), object, (type, data) => {
        const normalised = JSON.parse(JSON.stringify(data)) as JsonObject;
        expect(roundTrip(type, normalised)).toEqual({ type, data: normalised });
      }),
    );
  });

  it("writes a time back as Date's toISOString does, for every millisecond 't' can hold, and fails as it does beyond", () => {
    const shape = toEventShape(['T', [['at', 't']]]);
    const decodedAt = (millis: number) => decodePayload(shape, `[${millis}]`).data.at;
    const edges = ['1000-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z', '1970-01-01T00:00:00.000Z', '1969-12-31T23:59:59.999Z', '2000-02-29T12:34:56.789Z', '1900-03-01T00:00:00.000Z', '2100-02-28T23:59:59.999Z'];
    for (const iso of edges) expect(decodedAt(Date.parse(iso))).toBe(iso);
    fc.assert(
      fc.property(fc.integer({ min: Date.parse('1000-01-01T00:00:00.000Z'), max: Date.parse('9999-12-31T23:59:59.999Z') }), (millis) => {
        expect(decodedAt(millis)).toBe(new Date(millis).toISOString());
      }),
      { numRuns: 20_000 },
    );
    // Outside the range (a body 't' never wrote), Date's own answer, or its RangeError.
    expect(decodedAt(Date.parse('0999-12-31T23:59:59.999Z'))).toBe('0999-12-31T23:59:59.999Z');
    expect(() => decodedAt(1e20)).toThrow(RangeError);
  });
});
