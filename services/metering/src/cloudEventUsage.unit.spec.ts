import { InvalidUsageEventError, TallyError } from '@tally/domain';
import fc from 'fast-check';
import { binaryCloudEventAttributes, cloudEventUsageId, usageEventFromBinaryCloudEvent, usageEventFromJson } from './cloudEventUsage';
import { UndecodableUsageEventError } from './meteringErrors';

const structured = {
  specversion: '1.0',
  id: 'evt-1',
  source: '//billing.example.com/api',
  type: 'api_call',
  subject: 'acme',
  time: '2026-03-01T12:00:00.250Z',
  datacontenttype: 'application/json',
  data: { tokens: 1500, model: 'large' },
};

/** The Kafka headers of a binary-mode event with these attributes. */
const asHeaders = (attributes: Record<string, string>) =>
  Object.fromEntries(Object.entries(attributes).map(([name, value]) => [name === 'datacontenttype' ? 'content-type' : `ce_${name}`, value]));

describe('CloudEvents as usage events', () => {
  it('maps subject, type, time and data of a structured-mode event', () => {
    expect(usageEventFromJson(structured)).toEqual({
      id: 'ce:25://billing.example.com/api:evt-1',
      customerId: 'acme',
      event: 'api_call',
      timestamp: Date.UTC(2026, 2, 1, 12, 0, 0, 250),
      properties: { tokens: 1500, model: 'large' },
    });
  });

  it('counts the usage id made of source and id in characters, as every usage text is counted', () => {
    // 208 characters, 408 UTF-16 units.
    const emoji = '😀'.repeat(200);
    expect(usageEventFromJson({ ...structured, source: '/s', id: emoji, subject: '😀'.repeat(256) })).toMatchObject({ id: cloudEventUsageId('/s', emoji), customerId: '😀'.repeat(256) });
    expect(() => usageEventFromJson({ ...structured, source: '/s', id: '😀'.repeat(250) })).toThrow('CloudEvent source and id are too long together for a usage id (256 characters)');
  });

  it("leaves Tally's own JSON to the usual rules", () => {
    expect(usageEventFromJson({ id: 'u1', customerId: 'acme', event: 'api_call', timestamp: 1_772_546_530_000 }).id).toBe('u1');
  });

  it("refuses Tally's own JSON with an id a CloudEvent's could be, and leaves that id to the CloudEvent", () => {
    // Same id, same markers and ledger ids: whichever came second would never be charged.
    expect(() => usageEventFromJson({ id: 'ce:1:a:b', customerId: 'acme', event: 'api_call', timestamp: 1_772_546_530_000 })).toThrow(InvalidUsageEventError);
    expect(() => usageEventFromJson({ id: 'ce:1:a:b', customerId: 'acme', event: 'api_call', timestamp: 1_772_546_530_000 })).toThrow(/id must not start with "ce:"/);
    expect(usageEventFromJson({ ...structured, source: 'a', id: 'b' }).id).toBe('ce:1:a:b');
    // Only the prefix is kept: elsewhere in an id, or differently spelled, it is an id like any other.
    expect(usageEventFromJson({ id: 'x-ce:1', customerId: 'acme', event: 'api_call', timestamp: 1_772_546_530_000 }).id).toBe('x-ce:1');
    expect(usageEventFromJson({ id: 'CE:1:a:b', customerId: 'acme', event: 'api_call', timestamp: 1_772_546_530_000 }).id).toBe('CE:1:a:b');
  });

  it('maps a binary-mode event from ce_ headers and a JSON value', () => {
    const headers = {
      ce_specversion: Buffer.from('1.0'),
      ce_id: Buffer.from('evt-2'),
      ce_source: Buffer.from('/svc'),
      ce_type: Buffer.from('tokens_used'),
      ce_subject: Buffer.from('acme'),
      ce_time: Buffer.from('2026-03-01T12:00:00+02:00'),
      'content-type': Buffer.from('application/json'),
      traceparent: Buffer.from('00-abc'),
    };
    expect(binaryCloudEventAttributes(headers)).toMatchObject({ id: 'evt-2', subject: 'acme', datacontenttype: 'application/json' });
    expect(usageEventFromBinaryCloudEvent(headers, Buffer.from('{"tokens":7}'))).toEqual({
      id: 'ce:4:/svc:evt-2',
      customerId: 'acme',
      event: 'tokens_used',
      timestamp: Date.UTC(2026, 2, 1, 10),
      properties: { tokens: 7 },
    });
    expect(binaryCloudEventAttributes({ 'content-type': Buffer.from('application/json') })).toBeUndefined();
  });

  it('refuses a binary-mode event with a header that is not valid UTF-8, and names it without that header', () => {
    const headers = asHeaders({ specversion: '1.0', source: '/s', type: 't', subject: 'acme', time: '2026-03-01T12:00:00Z' });
    const refusal = (thunk: () => unknown) => {
      try {
        thunk();
      } catch (error) {
        return error;
      }
      throw new Error('not refused');
    };
    for (const bad of [{ ce_id: Buffer.from([0x63, 0x2d, 0xff]) }, { ce_id: 'c-1', 'content-type': Buffer.from([0x61, 0xc3]) }]) {
      const error = refusal(() => usageEventFromBinaryCloudEvent({ ...headers, ...bad }, Buffer.from('{}')));
      expect(error).toBeInstanceOf(UndecodableUsageEventError);
      expect(error).toMatchObject({ retriable: false, message: expect.stringMatching(/header (ce_id|content-type) is not valid UTF-8/) });
    }
    expect(binaryCloudEventAttributes({ ...headers, ce_id: Buffer.from([0x63, 0x2d, 0xff]) })).not.toHaveProperty('id');
    expect(refusal(() => usageEventFromBinaryCloudEvent({ ...headers, ce_id: 'c-1' }, Buffer.from([0x7b, 0xfe, 0x7d])))).toMatchObject({
      code: 'undecodable_usage_event',
      message: 'CloudEvent data is not valid UTF-8',
    });
  });

  it.each([
    [{ ...structured, specversion: '0.3' }, /specversion must be "1.0"/],
    [{ ...structured, id: '' }, /not a valid CloudEvent/],
    [{ ...structured, source: undefined }, /not a valid CloudEvent/],
    [{ ...structured, time: 'yesterday' }, /not a valid CloudEvent/],
    // The one rule for every timestamp (parseUsageEvent), whatever the SDK lets through.
    [{ ...structured, time: '2026-03-01T12:00:00' }, /time/],
    [{ ...structured, time: '2026-02-30T12:00:00Z' }, /time/],
    [{ ...structured, subject: undefined }, /subject \(the customer id\) is missing/],
    [{ ...structured, time: undefined }, /time \(when the usage happened\) is missing/],
    [{ ...structured, data: [1, 2] }, /data \(the properties\) must be a JSON object/],
    [{ ...structured, data: undefined, data_base64: 'AAAA' }, /data_base64/],
    [{ ...structured, data: { note: 'lone \ud800' } }, /property note is not well-formed Unicode/],
  ])('refuses %j', (event, reason) => {
    expect(() => usageEventFromJson(JSON.parse(JSON.stringify(event)))).toThrow(InvalidUsageEventError);
    expect(() => usageEventFromJson(JSON.parse(JSON.stringify(event)))).toThrow(reason);
  });

  it('leaves out a property no rule can read (nested data) rather than refusing the event', () => {
    const usage = usageEventFromJson(JSON.parse(JSON.stringify({ ...structured, data: { nested: { a: 1 }, tokens: 5 } })));
    expect(usage.properties).toEqual({ tokens: 5 });
  });

  it('refuses an event nested deeper than 64 levels, in its data or an extension attribute, as the API and the consumer must', () => {
    // JSON.parse reads any depth (iteratively); the API's JSON.stringify of the event did not.
    const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
    const attributes = '"specversion":"1.0","id":"e","source":"/s","type":"api_call","subject":"acme","time":"2026-03-01T12:00:00Z"';
    for (const json of [`{${attributes},"data":{"blob":${deep(10_000)}}}`, `{${attributes},"ext":${deep(10_000)}}`, `{${attributes},"ext":${deep(64)}}`]) {
      expect(() => usageEventFromJson(JSON.parse(json))).toThrow(InvalidUsageEventError);
      expect(() => usageEventFromJson(JSON.parse(json))).toThrow(/nests objects and arrays deeper than 64 levels/);
    }
    // 64 levels, the event itself the first: taken, its nested data left out.
    expect(usageEventFromJson(JSON.parse(`{${attributes},"ext":${deep(63)},"data":{"blob":${deep(62)}}}`)).properties).toEqual({});
    const headers = asHeaders({ specversion: '1.0', id: 'e', source: '/s', type: 'api_call', subject: 'acme', time: '2026-03-01T12:00:00Z' });
    expect(() => usageEventFromBinaryCloudEvent(headers, Buffer.from(`{"blob":${deep(10_000)}}`))).toThrow(/nests objects and arrays deeper than 64 levels/);
  });

  it('refuses a binary-mode event with a repeated attribute header as ambiguous, and names it without that attribute', () => {
    // Taking the first of two ce_id values would charge the event under an id its producer may not mean.
    const headers = asHeaders({ specversion: '1.0', source: '/s', type: 't', subject: 'acme', time: '2026-03-01T12:00:00Z' });
    for (const [name, values] of [
      ['ce_id', [Buffer.from('c-1'), Buffer.from('c-2')]],
      ['content-type', ['application/json', 'text/plain']],
    ] as const) {
      const repeated = { ce_id: 'c-1', ...headers, [name]: [...values] };
      expect(() => usageEventFromBinaryCloudEvent(repeated, Buffer.from('{}'))).toThrow(InvalidUsageEventError);
      expect(() => usageEventFromBinaryCloudEvent(repeated, Buffer.from('{}'))).toThrow(new RegExp(`header ${name} is repeated`));
    }
    expect(binaryCloudEventAttributes({ ...headers, ce_id: ['c-1', 'c-2'] })).not.toHaveProperty('id');
  });

  it('refuses binary data that is not JSON', () => {
    const attributes = { specversion: '1.0', id: 'x', source: '/s', type: 't', subject: 'acme', time: '2026-03-01T12:00:00Z' };
    expect(() => usageEventFromBinaryCloudEvent(asHeaders({ ...attributes, datacontenttype: 'text/plain' }), Buffer.from('hi'))).toThrow(/content type/);
    expect(() => usageEventFromBinaryCloudEvent(asHeaders(attributes), Buffer.from('{nope'))).toThrow(/not JSON/);
  });

  it('derives different ids from different (source, id) pairs, however they are spelled', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), (sourceA, idA, sourceB, idB) => {
        fc.pre(sourceA !== sourceB || idA !== idB);
        expect(cloudEventUsageId(sourceA, idA)).not.toBe(cloudEventUsageId(sourceB, idB));
      }),
    );
    expect(cloudEventUsageId('a:b', 'c')).not.toBe(cloudEventUsageId('a', 'b:c'));
  });

  /**
   * Rule 4: whatever a producer sends is usage or a refusal the consumer dead-letters with its
   * reason and the API answers 400 with; another error would be taken for an outage and retried.
   */
  it('refuses anything that is not usage with a typed refusal that is not retried, never another error', () => {
    const odd = fc.constantFrom('', ' ', '1e3', '-0', '0x10', 'NaN', '2026-06-30T23:59:60Z', '2026-03-01T00:00:00+05', '0050-01-01T00:00:00Z', '+275760-09-13T00:00:00Z', '\u0000', '\ud800', 'ce:1:a:b', 'x'.repeat(300));
    const field = fc.oneof(fc.jsonValue(), fc.string(), odd);
    const properties = fc.oneof(fc.jsonValue(), fc.dictionary(fc.string(), field));
    const record = fc.record(
      { id: field, customerId: field, event: field, timestamp: field, properties, specversion: fc.constantFrom('1.0', '0.3', 1), source: field, type: field, subject: field, time: field, data: properties },
      { requiredKeys: [] },
    );
    const refusedOrUsage = (parse: () => unknown) => {
      try {
        parse();
      } catch (error) {
        if (!(error instanceof TallyError)) throw error;
        expect(error.retriable).toBe(false);
      }
    };
    fc.assert(fc.property(fc.oneof(record, fc.anything()), (value) => refusedOrUsage(() => usageEventFromJson(value))), { numRuns: 2000 });
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.oneof(fc.string(), odd)), fc.uint8Array(), (attributes, value) =>
        refusedOrUsage(() => usageEventFromBinaryCloudEvent(asHeaders({ specversion: '1.0', ...attributes }), Buffer.from(value))),
      ),
      { numRuns: 2000 },
    );
  });
});
