import { SchemaType } from '@kafkajs/confluent-schema-registry';
import { usageEventAvroSchema } from '@tally/schemas';
import { createTestRegistry, stackConfig, uniqueName } from '@tally/test-support';
import { SchemaRegistryUnavailableError, UnknownSchemaIdError } from './meteringErrors';
import { createUsageEventDecoder } from './usageEventDecoder';

describe('the usage event decoder against the stack registry', () => {
  it('tells an id the registry does not know from a registry URL that misses its API root', async () => {
    const registry = createTestRegistry();
    const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(usageEventAvroSchema) }, { subject: uniqueName('decoder-value') });
    const avro = await registry.encode(id, { id: 'u-1', customerId: 'acme', event: 'api_call', timestamp: Date.UTC(2026, 2, 1), properties: {} });
    const unknownId = Buffer.from(avro);
    unknownId.writeInt32BE(0x7fffff01, 1);

    const decoder = createUsageEventDecoder({ registryUrl: stackConfig.schemaRegistryUrl });
    await expect(decoder.decode(avro)).resolves.toMatchObject({ id: 'u-1' });
    await expect(decoder.decode(unknownId)).rejects.toBeInstanceOf(UnknownSchemaIdError);

    // Apicurio's root without /apis/ccompat/v7 answers 404 for every id, without Confluent's error code.
    const rootOnly = createUsageEventDecoder({ registryUrl: new URL(stackConfig.schemaRegistryUrl).origin });
    for (const value of [avro, unknownId]) {
      const error = await rootOnly.decode(value).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(SchemaRegistryUnavailableError);
      expect(error).toMatchObject({ retriable: true });
    }
  });
});
