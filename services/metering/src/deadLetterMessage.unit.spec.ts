import { InvalidUsageEventError } from '@tally/domain';
import { createHash } from 'node:crypto';
import type { KafkaMessage } from 'kafkajs';
import { DEAD_LETTER_HEADERS, deadLetterHeader, deadLetterMessage, MAX_DEAD_LETTER_HEADER_BYTES, MAX_DEAD_LETTER_KEY_BYTES, MAX_DEAD_LETTER_VALUE_BYTES } from './deadLetterMessage';
import { UnmeterableUsageError } from './meteringErrors';

/** Kafka's default message.max.bytes, the limit the DLQ topic has unless configured otherwise. */
const KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;

function sizeOf(message: ReturnType<typeof deadLetterMessage>): number {
  let size = (message.key as Buffer | null)?.length ?? 0;
  size += (message.value as Buffer | null)?.length ?? 0;
  for (const [name, raw] of Object.entries(message.headers ?? {})) {
    for (const item of Array.isArray(raw) ? raw : [raw]) size += Buffer.byteLength(name) + (Buffer.isBuffer(item) ? item.length : Buffer.byteLength(String(item)));
  }
  return size;
}

describe('deadLetterMessage', () => {
  it('keeps the original key, value and headers and adds why and where from', () => {
    const message = {
      key: Buffer.from('alice'),
      value: Buffer.from('{"id":1}'),
      headers: { traceparent: Buffer.from('00-abc-def-01') },
      offset: '41',
      timestamp: '1767225600000',
      attributes: 0,
    } as KafkaMessage;
    const dead = deadLetterMessage(
      { topic: 'usage-events', partition: 2, message },
      new InvalidUsageEventError('id is missing or not a string'),
      new Date('2026-03-01T12:00:00Z'),
    );
    expect(dead.key).toBe(message.key);
    expect(dead.value).toBe(message.value);
    expect(dead.headers).toEqual({
      traceparent: message.headers!.traceparent,
      [DEAD_LETTER_HEADERS.reason]: 'id is missing or not a string',
      [DEAD_LETTER_HEADERS.errorCode]: 'invalid_usage_event',
      [DEAD_LETTER_HEADERS.sourceTopic]: 'usage-events',
      [DEAD_LETTER_HEADERS.sourcePartition]: '2',
      [DEAD_LETTER_HEADERS.sourceOffset]: '41',
      [DEAD_LETTER_HEADERS.at]: '2026-03-01T12:00:00.000Z',
    });
  });

  it('names the usage event the value holds when it is known, and nothing when it is not', () => {
    const message = { key: Buffer.from('acme'), value: Buffer.from('{}'), headers: {}, offset: '3', timestamp: '0', attributes: 0 } as KafkaMessage;
    const error = new InvalidUsageEventError('quantity must be a decimal string');
    const named = deadLetterMessage({ topic: 'usage-events', partition: 0, message }, error, new Date(0), { customerId: 'acme', usageEventId: 'web-3' });
    expect(named.headers).toMatchObject({ [DEAD_LETTER_HEADERS.customerId]: 'acme', [DEAD_LETTER_HEADERS.usageEventId]: 'web-3' });
    for (const usage of [undefined, null]) {
      const unnamed = deadLetterMessage({ topic: 'usage-events', partition: 0, message }, error, new Date(0), usage);
      expect(Object.keys(unnamed.headers ?? {})).not.toContain(DEAD_LETTER_HEADERS.usageEventId);
      expect(Object.keys(unnamed.headers ?? {})).not.toContain(DEAD_LETTER_HEADERS.customerId);
    }
  });

  it('cuts a value too large to fit the dead-letter topic, saying how large it was and its hash', () => {
    const value = Buffer.alloc(MAX_DEAD_LETTER_VALUE_BYTES + 10, 'x');
    const message = { key: Buffer.from('mallory'), value, headers: {}, offset: '7', timestamp: '0', attributes: 0 } as KafkaMessage;
    const dead = deadLetterMessage({ topic: 'usage-events', partition: 0, message }, new InvalidUsageEventError('not JSON'), new Date(0));
    expect((dead.value as Buffer).length).toBe(MAX_DEAD_LETTER_VALUE_BYTES);
    expect(dead.headers).toMatchObject({
      [DEAD_LETTER_HEADERS.valueTruncatedFrom]: String(value.length),
      [DEAD_LETTER_HEADERS.valueSha256]: createHash('sha256').update(value).digest('hex'),
      [DEAD_LETTER_HEADERS.sourceOffset]: '7',
    });
  });

  it('leaves a value at the limit whole', () => {
    const value = Buffer.alloc(MAX_DEAD_LETTER_VALUE_BYTES, 'y');
    const message = { key: null, value, headers: {}, offset: '8', timestamp: '0', attributes: 0 } as KafkaMessage;
    const dead = deadLetterMessage({ topic: 'usage-events', partition: 0, message }, new InvalidUsageEventError('not JSON'), new Date(0));
    expect(dead.value).toBe(value);
    expect(dead.headers).not.toHaveProperty(DEAD_LETTER_HEADERS.valueTruncatedFrom);
  });

  it('cuts a key near 1 MB, saying how long it was and its hash', () => {
    const key = Buffer.alloc(1_000_000, 'k');
    const message = { key, value: Buffer.from('{}'), headers: {}, offset: '9', timestamp: '0', attributes: 0 } as KafkaMessage;
    const dead = deadLetterMessage({ topic: 'usage-events', partition: 0, message }, new InvalidUsageEventError('x'), new Date(0));
    expect((dead.key as Buffer).length).toBe(MAX_DEAD_LETTER_KEY_BYTES);
    expect(dead.headers).toMatchObject({
      [DEAD_LETTER_HEADERS.keyTruncatedFrom]: '1000000',
      [DEAD_LETTER_HEADERS.keySha256]: createHash('sha256').update(key).digest('hex'),
    });
  });

  it('leaves out headers beyond the limit, keeping those that fit, with the total size and hash of all', () => {
    const small = Buffer.from('00-abc-def-01');
    const huge = Buffer.alloc(900_000, 'h');
    const message = {
      key: Buffer.from('k'),
      value: Buffer.from('{}'),
      headers: { traceparent: small, bulk: huge, many: [Buffer.from('a'), Buffer.from('b')] },
      offset: '10',
      timestamp: '0',
      attributes: 0,
    } as KafkaMessage;
    const dead = deadLetterMessage({ topic: 'usage-events', partition: 0, message }, new InvalidUsageEventError('x'), new Date(0));
    const lp = (data: Buffer): Buffer[] => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(data.length);
      return [length, data];
    };
    const all = Buffer.concat(
      [['traceparent', small], ['bulk', huge], ['many', Buffer.from('a')], ['many', Buffer.from('b')]].flatMap(([name, value]) => [
        ...lp(Buffer.from(name as string)),
        ...lp(value as Buffer),
      ]),
    );
    expect(dead.headers).toMatchObject({
      traceparent: small,
      many: [Buffer.from('a'), Buffer.from('b')],
      [DEAD_LETTER_HEADERS.headersTruncatedFrom]: String('traceparent'.length + small.length + 'bulk'.length + huge.length + 2 * ('many'.length + 1)),
      [DEAD_LETTER_HEADERS.headersDropped]: '1',
      [DEAD_LETTER_HEADERS.headersSha256]: createHash('sha256').update(all).digest('hex'),
    });
    expect(dead.headers).not.toHaveProperty('bulk');
  });

  it('keeps headers named "constructor" and "__proto__" when it cuts headers, as the data they are', () => {
    const ctor = Buffer.from('c');
    const proto = Buffer.from('p');
    const message = {
      key: Buffer.from('k'),
      value: Buffer.from('{}'),
      // A computed key: an own header named __proto__, as kafkajs may read one, not the prototype.
      headers: { constructor: ctor, ['__proto__']: proto, bulk: Buffer.alloc(900_000, 'h') },
      offset: '10',
      timestamp: '0',
      attributes: 0,
    } as KafkaMessage;
    const dead = deadLetterMessage({ topic: 'usage-events', partition: 0, message }, new InvalidUsageEventError('x'), new Date(0));
    const headers = dead.headers!;
    expect(Object.getPrototypeOf(headers)).toBe(Object.prototype);
    expect(Object.hasOwn(headers, 'constructor') && headers.constructor).toEqual(ctor);
    expect(Object.hasOwn(headers, '__proto__') && headers['__proto__']).toEqual(proto);
    expect(headers[DEAD_LETTER_HEADERS.headersDropped]).toBe('1');
  });

  it('keeps a header without a value as one without a value when it cuts headers, not as the text "null"', () => {
    const message = {
      key: Buffer.from('k'),
      value: Buffer.from('{}'),
      // kafkajs reads a header of length -1 as null, which its types do not say.
      headers: { absent: null, bulk: Buffer.alloc(900_000, 'h'), many: [Buffer.from('a'), null] } as unknown as KafkaMessage['headers'],
      offset: '10',
      timestamp: '0',
      attributes: 0,
    } as KafkaMessage;
    const dead = deadLetterMessage({ topic: 'usage-events', partition: 0, message }, new InvalidUsageEventError('x'), new Date(0));
    expect(dead.headers).toMatchObject({ absent: null, many: [Buffer.from('a'), null], [DEAD_LETTER_HEADERS.headersDropped]: '1' });
    // In the hash, as in Kafka's encoding, no value is length -1 with no bytes: not the same as an empty one.
    const lp = (data: Buffer | null): Buffer[] => {
      const length = Buffer.alloc(4);
      length.writeInt32BE(data === null ? -1 : data.length);
      return data === null ? [length] : [length, data];
    };
    const all = Buffer.concat(
      ([['absent', null], ['bulk', Buffer.alloc(900_000, 'h')], ['many', Buffer.from('a')], ['many', null]] as const).flatMap(([name, value]) => [...lp(Buffer.from(name)), ...lp(value)]),
    );
    expect(dead.headers![DEAD_LETTER_HEADERS.headersSha256]).toBe(createHash('sha256').update(all).digest('hex'));
    expect(deadLetterHeader(message.headers, 'absent')).toBeNull();
  });

  it('always fits the topic: value, key and headers all near 1 MB at once', () => {
    const message = {
      key: Buffer.alloc(1_000_000, 'k'),
      value: Buffer.alloc(1_000_000, 'v'),
      headers: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`h${i}`, Buffer.alloc(10_000, 'h')])),
      offset: '11',
      timestamp: '0',
      attributes: 0,
    } as KafkaMessage;
    const dead = deadLetterMessage({ topic: 'usage-events', partition: 0, message }, new InvalidUsageEventError('x'.repeat(100_000)), new Date(0));
    expect(sizeOf(dead)).toBeLessThan(MAX_DEAD_LETTER_VALUE_BYTES + MAX_DEAD_LETTER_KEY_BYTES + MAX_DEAD_LETTER_HEADER_BYTES + 4096);
    expect(sizeOf(dead)).toBeLessThan(KAFKA_DEFAULT_MAX_MESSAGE_BYTES / 2);
  });

  it('names the code of an unanticipated failure', () => {
    const message = { key: null, value: Buffer.from('{}'), headers: {}, offset: '12', timestamp: '0', attributes: 0 } as KafkaMessage;
    const dead = deadLetterMessage(
      { topic: 'usage-events', partition: 0, message },
      new UnmeterableUsageError('22P02', 'metering failed (22P02): invalid input syntax for type json'),
      new Date(0),
    );
    expect(dead.headers).toMatchObject({ [DEAD_LETTER_HEADERS.errorCode]: 'unmeterable_usage', [DEAD_LETTER_HEADERS.causeCode]: '22P02' });
  });
});
