import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SchemaType } from '@kafkajs/confluent-schema-registry';
import { ledgerEventAvroSchema } from '@tally/schemas';
import { createTestRegistry, uniqueName } from '@tally/test-support';
import { Type } from 'avsc';

jest.setTimeout(60_000);

/**
 * Every version `schemas/avro/ledger-event.avsc` has had, in order, named by the commit that
 * made it: embedded, since a shallow clone has no history to read them from. The last is the
 * schema as it stands; a change to the .avsc adds its version here (the first test says so).
 */
const HISTORY_DIR = path.join(__dirname, 'testing', 'ledgerEventSchemaHistory');
const history = readdirSync(HISTORY_DIR)
  .filter((file) => file.endsWith('.avsc'))
  .sort((a, b) => parseInt(a, 10) - parseInt(b, 10))
  .map((file) => ({ version: file.replace(/\.avsc$/, ''), schema: JSON.parse(readFileSync(path.join(HISTORY_DIR, file), 'utf8')) as object }));
const at = (commit: string) => history.find(({ version }) => version.endsWith(`-${commit}`))!.schema;

/** Whether data written with `writer` can be read with `reader` (Avro schema resolution, as a consumer's deserializer does it). */
function reads(reader: object, writer: object): true | string {
  try {
    Type.forSchema(reader as never).createResolver(Type.forSchema(writer as never));
    return true;
  } catch (error) {
    return (error as Error).message.slice(0, 200);
  }
}

describe('the credit-ledger schema under the registry', () => {
  const registry = createTestRegistry();
  const { fields, ...record } = ledgerEventAvroSchema;
  const withoutActor = { ...record, fields: fields.filter((field) => field.name !== 'actor') };
  const register = (schema: object, subject: string) => registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject });

  it('has every version of its history embedded, the last being the schema as it stands', () => {
    expect(history.map(({ version }) => version)).toEqual(['1-9e621a1', '2-fab0a37', '3-2caaf52', '4-987438f', '5-b223344', '6-usage-timestamp-doc']);
    expect(history[history.length - 1]!.schema).toEqual(ledgerEventAvroSchema);
  });

  it('reads every message ever published, whichever version wrote it (BACKWARD across the whole history)', () => {
    expect(history.map(({ version, schema }) => [version, reads(ledgerEventAvroSchema, schema)])).toEqual(history.map(({ version }) => [version, true]));
  });

  it('is read by the version before it where the README promises FORWARD too (actor, refunds, doc-only changes)', () => {
    // Upgrading to actors: "readers of the previous version go on reading the new messages without it".
    expect(reads(at('fab0a37'), at('2caaf52'))).toBe(true);
    // Upgrading to refunds: `refund` with a default, "BACKWARD and FORWARD compatible".
    expect(reads(at('2caaf52'), at('987438f'))).toBe(true);
    // Doc changes only.
    expect(reads(at('987438f'), at('b223344'))).toBe(true);
    expect(reads(at('b223344'), at('usage-timestamp-doc'))).toBe(true);
  });

  it('would notice a version that cannot read an older one (a field added without its default)', () => {
    const { default: _default, ...actorWithoutDefault } = fields.find((field) => field.name === 'actor')!;
    const broken = { ...record, fields: [...withoutActor.fields, actorWithoutDefault] };
    expect(reads(broken, at('fab0a37'))).toMatch(/actor/);
  });

  it('takes every version in the order they came, and the schema as it stands, on one subject', async () => {
    const subject = `${uniqueName('ledger_history')}-value`;
    const ids: number[] = [];
    for (const { schema } of history) ids.push((await register(schema, subject)).id);
    const current = await register(ledgerEventAvroSchema, subject);
    expect(current.id).toBe(ids[ids.length - 1]);
    // Each change is a version of its own but the doc-only ones, which the registry (canonical-hash
    // mode) takes for the schema before them.
    expect(new Set(ids).size).toBe(history.length - 2);
    expect(ids[4]).toBe(ids[3]);
    expect(ids[5]).toBe(ids[4]);
  });

  it('takes the version with actor over the one before it, as a new version', async () => {
    const subject = `${uniqueName('ledger_actor')}-value`;
    const before = await register(withoutActor, subject);
    const after = await register(ledgerEventAvroSchema, subject);
    expect(after.id).not.toBe(before.id);
    expect(await registry.getLatestSchemaId(subject)).toBe(after.id);
  });

  it('refuses the same field without its default, which old messages could not be read with', async () => {
    const subject = `${uniqueName('ledger_actor_bad')}-value`;
    await register(withoutActor, subject);
    const { default: _default, ...actorWithoutDefault } = fields.find((field) => field.name === 'actor')!;
    await expect(register({ ...record, fields: [...withoutActor.fields, actorWithoutDefault] }, subject)).rejects.toThrow(/incompatible|409/i);
  });
});
