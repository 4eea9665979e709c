import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { stackConfig } from './stackConfig';

/** A schema registry client on the local stack's Confluent-compatible API (Apicurio's ccompat). */
export function createTestRegistry(): SchemaRegistry {
  return new SchemaRegistry({ host: stackConfig.schemaRegistryUrl, clientId: 'tally-test' });
}
