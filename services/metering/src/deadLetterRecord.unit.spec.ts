import { deadLetterRecordOf } from './deadLetterRecord';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';

describe('a dead letter as an operator reads it', () => {
  it('takes the reason, codes and origin from the headers, and a printable preview of the value', () => {
    const record = deadLetterRecordOf(2, {
      offset: '17',
      timestamp: String(Date.UTC(2026, 0, 1)),
      key: Buffer.from('acme'),
      value: Buffer.from('{"id":\u0001"x"'),
      headers: {
        [DEAD_LETTER_HEADERS.reason]: Buffer.from('not JSON'),
        [DEAD_LETTER_HEADERS.errorCode]: 'invalid_usage_event',
        [DEAD_LETTER_HEADERS.causeCode]: '22P02',
        [DEAD_LETTER_HEADERS.sourceTopic]: 'usage-events',
        [DEAD_LETTER_HEADERS.sourcePartition]: '5',
        [DEAD_LETTER_HEADERS.sourceOffset]: '123',
        [DEAD_LETTER_HEADERS.at]: '2026-03-01T12:00:00Z',
        [DEAD_LETTER_HEADERS.customerId]: 'acme',
        [DEAD_LETTER_HEADERS.usageEventId]: Buffer.from('web:3'),
      },
    });
    expect(record).toEqual({
      partition: 2,
      offset: '17',
      deadLetteredAt: '2026-03-01T12:00:00.000Z',
      errorCode: 'invalid_usage_event',
      reason: 'not JSON',
      causeCode: '22P02',
      sourceTopic: 'usage-events',
      sourcePartition: 5,
      sourceOffset: '123',
      key: 'acme',
      valuePreview: '{"id":\ufffd"x"',
      customerId: 'acme',
      usageEventId: 'web:3',
    });
  });

  it('never throws on a letter without Tally\'s headers, key or value, and falls back to when Kafka stored it', () => {
    const record = deadLetterRecordOf(0, { offset: '0', timestamp: String(Date.UTC(2026, 0, 2)), key: null, value: null, headers: { [DEAD_LETTER_HEADERS.sourcePartition]: 'x', [DEAD_LETTER_HEADERS.at]: 'soon' } });
    expect(record).toMatchObject({ deadLetteredAt: '2026-01-02T00:00:00.000Z', errorCode: null, reason: null, sourcePartition: null, key: null, valuePreview: null, customerId: null, usageEventId: null });
  });

  it('cuts a long key and value', () => {
    const record = deadLetterRecordOf(0, { offset: '0', timestamp: '0', key: Buffer.from('k'.repeat(1000)), value: Buffer.alloc(10_000, 'v'), headers: {} });
    expect(record.key).toHaveLength(256);
    expect(record.valuePreview).toHaveLength(300);
  });

  it('names no usage event by an id no usage event can have (empty, or longer than 256 characters)', () => {
    const record = deadLetterRecordOf(0, {
      offset: '0',
      timestamp: '0',
      key: null,
      value: null,
      headers: { [DEAD_LETTER_HEADERS.customerId]: '', [DEAD_LETTER_HEADERS.usageEventId]: 'e'.repeat(257) },
    });
    expect(record).toMatchObject({ customerId: null, usageEventId: null });
  });

  it('names the usage event by ids counted in characters, as metering counts them', () => {
    const emoji = '😀'.repeat(256);
    const record = deadLetterRecordOf(0, { offset: '0', timestamp: '0', key: null, value: null, headers: { [DEAD_LETTER_HEADERS.customerId]: emoji, [DEAD_LETTER_HEADERS.usageEventId]: emoji } });
    expect(record).toMatchObject({ customerId: emoji, usageEventId: emoji });
  });
});
