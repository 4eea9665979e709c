import { SchemaType } from '@kafkajs/confluent-schema-registry';
import { ledgerEventAvroSchema } from '@tally/schemas';
import { createTestRegistry, uniqueName } from '@tally/test-support';

jest.setTimeout(60_000);

/**
 * The credit-ledger value schema gains envelope fields over time (the figures after holds, then
 * `actor`). A subject holding the previous version must take the new one under the registry's
 * BACKWARD rule, or a relay upgraded on a live topic could not publish.
 */
describe('the credit-ledger schema under the registry', () => {
  const registry = createTestRegistry();
  const { fields, ...record } = ledgerEventAvroSchema;
  const withoutActor = { ...record, fields: fields.filter((field) => field.name !== 'actor') };
  const register = (schema: object, subject: string) => registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject });

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
