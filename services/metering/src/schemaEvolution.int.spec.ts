import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { topicValueSubject, usageEventAvroSchema } from '@tally/schemas';
import { createTestRegistry, stackConfig, waitFor } from '@tally/test-support';
import { createMeteringTestKit, type MeteringTestKit } from './meteringTestKit.spec';

jest.setTimeout(120_000);

const run = promisify(execFile);
/** The built command line (`npm test` builds first), run as a product engineer runs it. */
const CLI = path.resolve(__dirname, '..', '..', 'tally', 'dist', 'cli.js');

const withField = (field: object) => ({ ...usageEventAvroSchema, fields: [...usageEventAvroSchema.fields, field] });

describe('the usage-event schema evolving under the registry', () => {
  let kit: MeteringTestKit;
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tally-schema-'));
  });

  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await kit?.close();
  });

  async function send(args: string[]) {
    return run(process.execPath, [CLI, 'send', ...args], {
      env: { ...process.env, TALLY_USAGE_TOPIC: kit.topic, TALLY_LOG_LEVEL: 'silent' },
    });
  }

  it('meters a newer version (a field added with a default) beside the old one, without a restart', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const acme = await kit.openBalance('acme', 'api', '100');
    const consumer = await kit.startConsumer();
    const v1 = (id: string) => ({ key: 'acme', value: kit.avro({ id, customerId: 'acme', event: 'api_call', timestamp: Date.UTC(2026, 2, 1) }) });

    await kit.produce([v1('old-1'), v1('old-2')]);
    await waitFor(() => consumer.counters().consumed >= 2, { description: 'version 1 metered', timeoutMs: 60_000 });

    // A producer moves to version 2 while the consumer runs: it registers it and writes with it.
    const v2 = path.join(dir, 'usage-event-v2.avsc');
    writeFileSync(v2, JSON.stringify(withField({ name: 'region', type: 'string', default: 'global' })));
    const { stdout } = await send(['--schema', v2, '-c', 'acme', '-e', 'api_call', '-n', '3']);
    expect(stdout.trim().split('\n')).toHaveLength(3);
    // And another producer is still on version 1.
    await kit.produce([v1('old-3')]);

    await waitFor(() => consumer.counters().consumed >= 6, { description: 'both versions metered', timeoutMs: 60_000 });
    expect(consumer.counters()).toMatchObject({ matched: 6, deadLettered: 0 });
    expect(await kit.balanceOf(acme)).toBe('94');
    // Both versions are registered under the topic's subject; the latest is the producer's.
    const latest = await createTestRegistry().getLatestSchemaId(topicValueSubject(kit.topic));
    expect(latest).not.toBe(kit.usageSchemaId);
  });

  it("registers a compatible version under the subject's own stricter rule (FULL_TRANSITIVE), and leaves that rule alone", async () => {
    kit = await createMeteringTestKit();
    const subject = topicValueSubject(kit.topic);
    const config = (init?: RequestInit) =>
      fetch(`${stackConfig.schemaRegistryUrl}/config/${subject}`, { headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' }, ...init });
    expect((await config({ method: 'PUT', body: JSON.stringify({ compatibility: 'FULL_TRANSITIVE' }) })).status).toBe(200);
    const v2 = path.join(dir, 'usage-event-v2.avsc');
    writeFileSync(v2, JSON.stringify(withField({ name: 'region', type: 'string', default: 'global' })));

    const { stdout } = await send(['--schema', v2, '-c', 'acme', '-e', 'api_call']);

    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(await (await config()).json()).toEqual({ compatibilityLevel: 'FULL_TRANSITIVE' });
  });

  it('stops a producer whose schema the registry refuses, with the reason, and sends nothing', async () => {
    kit = await createMeteringTestKit();
    // A field added without a default: version 1 records could not be read with it (BACKWARD).
    const incompatible = path.join(dir, 'usage-event-bad.avsc');
    writeFileSync(incompatible, JSON.stringify(withField({ name: 'region', type: 'string' })));

    const failure = await send(['--schema', incompatible, '-c', 'acme', '-e', 'api_call']).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toMatch(new RegExp(`the schema registry refused the schema for ${topicValueSubject(kit.topic)}; nothing was sent`));
    expect(failure?.stderr).toMatch(/Incompatible/i);
    const [offsets] = await kit.admin.fetchTopicOffsets(kit.topic);
    expect(offsets!.high).toBe('0');
  });
});
