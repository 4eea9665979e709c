import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';

/**
 * Registers an Avro schema under `subject` as the registry's own rules decide, and returns its
 * id (an identical schema already there keeps its id). Not `registry.register`: that refuses,
 * without a status, any subject whose rule is not exactly BACKWARD (a stricter FULL_TRANSITIVE
 * too), and on a subject's first registration writes a subject-level BACKWARD that overrides a
 * stricter global rule. A refusal rejects with the registry's status (409 incompatible, 422
 * invalid, 401/403), which isRefusedByRegistry reads.
 */
export async function registerSchema(registry: SchemaRegistry, subject: string, schema: string): Promise<number> {
  // The client's own API (its auth, retries and errors with a status), private in its types only.
  const response = await registry['api'].Subject.register({ subject, body: { schema } });
  const { id } = response.data() as { id?: unknown };
  if (typeof id !== 'number') throw new Error(`the schema registry answered the registration of ${subject} without an id`);
  return id;
}
