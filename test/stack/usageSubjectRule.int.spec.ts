/**
 * The usage subject's compatibility rule, as the local stack sets it (scripts/lib/schema-registry.sh):
 * the consumer requires `id`, `customerId`, `event` and `timestamp` of every record and reads it
 * with its writer's schema, so a new producer version must keep them. The global BACKWARD rule
 * lets a version drop or rename them (every event of it would be dead-lettered); FULL_TRANSITIVE
 * refuses that, and still takes a field added with a default.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { usageEventAvroSchema } from '@tally/schemas';
import { stackConfig, uniqueName } from '@tally/test-support';

jest.setTimeout(60_000);

const ROOT = path.resolve(__dirname, '..', '..');

async function registry(method: string, urlPath: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${stackConfig.schemaRegistryUrl}${urlPath}`, {
    method,
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: await response.json().catch(() => undefined) };
}

const register = (subject: string, schema: object) => registry('POST', `/subjects/${subject}/versions`, { schema: JSON.stringify(schema) });

describe('the usage subject under the local registry', () => {
  const topic = uniqueName('usage_rule');
  const subject = `${topic}-value`;

  beforeAll(() => {
    // The stack's own step, for a usage topic of this test's (the stack's usage-events is shared).
    const result = spawnSync(
      'bash',
      ['-c', 'set -euo pipefail; source scripts/lib/env.sh; source scripts/lib/common.sh; source scripts/lib/schema-registry.sh; registry_usage_rule'],
      { cwd: ROOT, env: { ...process.env, TALLY_USAGE_TOPIC: topic }, encoding: 'utf8' },
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  afterAll(async () => {
    await registry('DELETE', `/subjects/${subject}`);
    await registry('DELETE', `/subjects/${subject}?permanent=true`);
  });

  it('refuses a version that drops customerId, and takes one that adds a field with a default', async () => {
    expect(await registry('GET', `/config/${subject}`)).toMatchObject({ status: 200, json: { compatibilityLevel: 'FULL_TRANSITIVE' } });
    expect((await register(subject, usageEventAvroSchema)).status).toBe(200);

    const withoutCustomer = { ...usageEventAvroSchema, fields: usageEventAvroSchema.fields.filter((field) => field.name !== 'customerId') };
    expect((await register(subject, withoutCustomer)).status).toBe(409);
    // Renamed, with a default so that BACKWARD would take it: still a version without customerId.
    const renamed = { ...withoutCustomer, fields: [...withoutCustomer.fields, { name: 'customer', type: 'string', default: '' }] };
    expect((await register(subject, renamed)).status).toBe(409);

    const withRegion = { ...usageEventAvroSchema, fields: [...usageEventAvroSchema.fields, { name: 'region', type: 'string', default: 'global' }] };
    expect((await register(subject, withRegion)).status).toBe(200);
  });
});
