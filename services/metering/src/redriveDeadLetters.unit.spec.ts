import { InvalidUsageEventError, type TallyError } from '@tally/domain';
import type { KafkaMessage } from 'kafkajs';
import { DEAD_LETTER_HEADERS, deadLetterMessage, MAX_DEAD_LETTER_VALUE_BYTES } from './deadLetterMessage';
import { BalanceNotOpenedError, UndecodableBatchError } from './meteringErrors';
import { pickedSpans, REDRIVEN_FROM_HEADER, redriveDecision } from './redriveDeadLetters';

const AT = new Date('2026-03-01T12:00:00Z');

function original(overrides: Partial<KafkaMessage> = {}): KafkaMessage {
  return {
    key: Buffer.from('alice'),
    value: Buffer.from('{"id":"u1"}'),
    headers: { traceparent: Buffer.from('00-abc-def-01'), 'ce_type': [Buffer.from('a'), Buffer.from('b')] },
    offset: '41',
    timestamp: '1767225600000',
    attributes: 0,
    ...overrides,
  } as KafkaMessage;
}

/** A letter as the consumer writes it, read back from the dead-letter topic at `offset`. */
function letterOf(message: KafkaMessage, error: TallyError = new BalanceNotOpenedError('alice-api'), topic = 'usage-events', offset = '7') {
  const dead = deadLetterMessage({ topic, partition: 2, message }, error, AT, { customerId: 'alice', usageEventId: 'u-1' });
  return { key: dead.key as Buffer | null, value: dead.value as Buffer | null, headers: dead.headers, offset };
}

const options = { usageTopic: 'usage-events', errorCodes: ['balance_not_opened'] } as const;

describe('redriveDecision', () => {
  it('sends back the original key, value and headers, without what dead-lettering added, with where the letter was', () => {
    const message = original();
    const decision = redriveDecision(letterOf(message), 1, options);
    expect(decision).toEqual({
      errorCode: 'balance_not_opened',
      send: {
        key: message.key,
        value: message.value,
        headers: { ...message.headers, [REDRIVEN_FROM_HEADER]: '1:7' },
      },
    });
  });

  it('sends back headers named "constructor" and "__proto__" as headers, not as members of the object', () => {
    // A computed key: an own header named __proto__, as kafkajs may read one, not the prototype.
    const headers = { constructor: Buffer.from('c'), ['__proto__']: Buffer.from('p') };
    const decision = redriveDecision(letterOf(original({ headers })), 1, options);
    const sent = 'send' in decision ? decision.send.headers! : {};
    expect(Object.getPrototypeOf(sent)).toBe(Object.prototype);
    expect(Object.hasOwn(sent, 'constructor') && sent.constructor).toEqual(Buffer.from('c'));
    expect(Object.hasOwn(sent, '__proto__') && sent['__proto__']).toEqual(Buffer.from('p'));
    expect(sent[REDRIVEN_FROM_HEADER]).toBe('1:7');
  });

  it('leaves letters of other error codes, and takes every code when asked', () => {
    const invalid = letterOf(original(), new InvalidUsageEventError('id is missing'));
    expect(redriveDecision(invalid, 0, options)).toEqual({ skip: 'not_selected' });
    expect(redriveDecision(invalid, 0, { ...options, errorCodes: 'all' })).toMatchObject({ errorCode: 'invalid_usage_event' });
    expect(redriveDecision(invalid, 0, { ...options, errorCodes: ['balance_not_opened', 'invalid_usage_event'] })).toHaveProperty('send');
  });

  it('takes only the letters picked by place, whatever their error code, and still not one it cannot send', () => {
    const picked = { ...options, errorCodes: 'all', letters: ['1:7', '1:9'] } as const;
    const invalid = letterOf(original(), new InvalidUsageEventError('id is missing'));
    expect(redriveDecision(invalid, 1, picked)).toMatchObject({ errorCode: 'invalid_usage_event', send: { headers: { [REDRIVEN_FROM_HEADER]: '1:7' } } });
    // The same offset on another partition, and another offset on the same one, are other letters.
    expect(redriveDecision(invalid, 0, picked)).toEqual({ skip: 'not_selected' });
    expect(redriveDecision({ ...invalid, offset: '8' }, 1, picked)).toEqual({ skip: 'not_selected' });
    const cut = letterOf(original({ value: Buffer.alloc(MAX_DEAD_LETTER_VALUE_BYTES + 1, 0x7b) }), undefined, undefined, '9');
    expect(redriveDecision(cut, 1, picked)).toEqual({ skip: 'cut' });
  });

  it('reads, for picked letters, only the span of their places in each partition', () => {
    expect(pickedSpans(['1:9', '0:4', '1:7', '1:12'])).toEqual(
      new Map([
        [1, { from: 7n, to: 12n }],
        [0, { from: 4n, to: 4n }],
      ]),
    );
    // A place that is not one is never found, so it spans nothing.
    expect(pickedSpans(['0:01', '0-1', ''])).toEqual(new Map());
  });

  it('takes letters from the given time on, and none whose time cannot be read', () => {
    const letter = letterOf(original());
    expect(redriveDecision(letter, 0, { ...options, since: AT })).toHaveProperty('send');
    expect(redriveDecision(letter, 0, { ...options, since: new Date(AT.getTime() + 1) })).toEqual({ skip: 'not_selected' });
    const timeless = { ...letter, headers: { ...letter.headers, [DEAD_LETTER_HEADERS.at]: 'yesterday' } };
    expect(redriveDecision(timeless, 0, { ...options, since: AT })).toEqual({ skip: 'not_selected' });
  });

  it('leaves a letter whose value was cut: only the source topic holds it whole', () => {
    const big = letterOf(original({ value: Buffer.alloc(MAX_DEAD_LETTER_VALUE_BYTES + 1, 0x61) }));
    expect(redriveDecision(big, 0, options)).toEqual({ skip: 'cut' });
  });

  it('leaves a raw batch that skip-batch dead-lettered, and letters of another topic or none', () => {
    const batch = letterOf(
      original({ key: null, headers: { [DEAD_LETTER_HEADERS.sourceLastOffset]: '50' } }),
      new UndecodableBatchError('unknown codec'),
    );
    expect(redriveDecision(batch, 0, { ...options, errorCodes: 'all' })).toEqual({ skip: 'raw_batch' });
    expect(redriveDecision(letterOf(original(), undefined, 'orders'), 0, options)).toEqual({ skip: 'other_source' });
    expect(redriveDecision({ ...original(), offset: '3' }, 0, { ...options, errorCodes: 'all' })).toEqual({ skip: 'other_source' });
  });

  it('sends a letter that was sent back before and failed again with its newest origin only', () => {
    const again = letterOf(original({ headers: { [REDRIVEN_FROM_HEADER]: Buffer.from('0:3'), traceparent: Buffer.from('t') } }), undefined, 'usage-events', '9');
    expect(redriveDecision(again, 0, options)).toMatchObject({ send: { headers: { traceparent: Buffer.from('t'), [REDRIVEN_FROM_HEADER]: '0:9' } } });
  });
});
