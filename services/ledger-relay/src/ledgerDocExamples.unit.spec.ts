/**
 * docs/ledger.md shows "the values as @kafkajs/confluent-schema-registry decodes them". Checked
 * here, so they cannot drift from the schema or the relay: each example is what the relay makes of
 * the stored event it describes, and what avsc (the registry client's decoder) gives back for it,
 * every field included.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { RecordedEvent } from '@tally/event-store';
import { LEDGER_EVENT_TYPES, ledgerEventAvroSchema } from '@tally/schemas';
import { Type, type types } from 'avsc';
import { toLedgerEventRecord, type LedgerEventRecord } from './ledgerEventRecord';

const avroType = Type.forSchema(ledgerEventAvroSchema as Parameters<typeof Type.forSchema>[0]) as types.RecordType;
const payloadType = avroType.field('payload')!.type;

const doc = readFileSync(path.resolve(__dirname, '..', '..', '..', 'docs', 'ledger.md'), 'utf8');
const eventTypes = doc.slice(doc.indexOf('### Event types'), doc.indexOf('### How the schema evolves'));
const blocks = [...eventTypes.matchAll(/^```json\n([\s\S]*?)^```$/gm)].map((block) => JSON.parse(block[1]!) as Record<string, unknown>);
const envelopes = blocks.filter((block) => 'eventId' in block) as unknown as LedgerEventRecord[];
const payloads = blocks.filter((block) => !('eventId' in block));

/** What a registry client decodes from the bytes of `value`, as plain JSON values. */
const decoded = (type: Type, value: unknown): unknown => JSON.parse(JSON.stringify(type.fromBuffer(type.toBuffer(value))));

/** The stored event an example describes: its payload's fields, the figures the envelope states, the metadata. */
function storedEventOf(example: LedgerEventRecord): RecordedEvent {
  const fields = Object.values(example.payload)[0] as Record<string, unknown>;
  const actor = example.actor === null ? {} : { actor: example.actor.kind === 'key' ? example.actor : { kind: example.actor.kind } };
  return {
    id: example.eventId,
    type: example.type,
    streamId: `creditBalance-${example.balanceId}`,
    revision: BigInt(example.streamRevision),
    position: BigInt(example.globalPosition),
    data: {
      ...fields,
      occurredAt: new Date(example.occurredAt).toISOString(),
      ...(example.balance === null ? {} : { balanceAfter: example.balance, heldAfter: example.held }),
    } as RecordedEvent['data'],
    metadata: { schemaVersion: 1, balanceId: example.balanceId, customerId: example.customerId, productId: example.productId, causationId: 'cmd-1', ...actor } as RecordedEvent['metadata'],
    recordedAt: new Date(example.recordedAt),
  };
}

describe('the examples of docs/ledger.md', () => {
  it('are found: one of every event type, in the schema\'s order, but the hold events that share CreditsHeld\'s', () => {
    const sharingOne = ['HoldCaptured', 'HoldReleased', 'HoldExpired'];
    expect(envelopes.map((example) => example.type)).toEqual(LEDGER_EVENT_TYPES.filter((type) => !sharingOne.includes(type)));
    expect(payloads).toHaveLength(1);
  });

  it.each(envelopes.map((example) => [`${example.type} (revision ${example.streamRevision})`, example] as const))(
    '%s is what the relay publishes for it, as the registry client decodes it',
    (_name, example) => {
      // Every field the decoder returns, in its order (toEqual would pass over a missing one).
      expect(JSON.stringify(decoded(avroType, example))).toBe(JSON.stringify(example));
      expect(decoded(avroType, toLedgerEventRecord(storedEventOf(example)))).toEqual(example);
    },
  );

  it('shows a payload alone as the registry client decodes it, every field included', () => {
    for (const payload of payloads) expect(JSON.stringify(decoded(payloadType, payload))).toBe(JSON.stringify(payload));
  });

  it('follow one balance: each revision once, in order, on one balance', () => {
    const revisions = envelopes.map((example) => example.streamRevision);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(new Set(envelopes.map((example) => example.balanceId)).size).toBe(1);
  });
});
