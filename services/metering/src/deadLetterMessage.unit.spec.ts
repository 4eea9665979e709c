import { InvalidUsageEventError } from '@tally/domain';
import { createHash } from 'node:crypto';
import type { KafkaMessage } from 'kafkajs';
import { DEAD_LETTER_HEADERS, deadLetterMessage, MAX_DEAD_LETTER_VALUE_BYTES } from './deadLetterMessage';

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
});
