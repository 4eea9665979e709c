import { waitFor } from '@tally/test-support';
import { createMeteringTestKit, type MeteringTestKit } from './meteringTestKit.spec';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';

jest.setTimeout(120_000);

describe('CloudEvents on the usage topic', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it('meters structured and binary mode beside Avro and JSON, once per (source, id)', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({
      id: 'api',
      name: 'API',
      consumption: [
        { event: 'api_call', credits: '1' },
        { event: 'tokens_used', credits: '0.001', perUnitOf: 'tokens' },
      ],
      lowBalanceThreshold: null,
    });
    const acme = await kit.openBalance('acme', 'api', '100');
    const structured = (source: string, id: string, type: string, data: object) =>
      Buffer.from(JSON.stringify({ specversion: '1.0', id, source, type, subject: 'acme', time: '2026-03-01T12:00:00Z', data }));
    const binary = (source: string, id: string, type: string, data: object) => ({
      key: 'acme',
      value: Buffer.from(JSON.stringify(data)),
      headers: {
        ce_specversion: '1.0',
        ce_id: id,
        ce_source: source,
        ce_type: type,
        ce_subject: 'acme',
        ce_time: '2026-03-01T12:00:01Z',
        'content-type': 'application/json',
      },
    });
    await kit.produce([
      { key: 'acme', value: structured('/svc-a', 'e1', 'api_call', {}) }, // 1
      { key: 'acme', value: structured('/svc-b', 'e1', 'api_call', {}) }, // another source: 1
      binary('/svc-a', 'e2', 'tokens_used', { tokens: 2500 }), // 2.5
      { key: 'acme', value: kit.avro({ id: 'n1', customerId: 'acme', event: 'api_call', timestamp: Date.UTC(2026, 2, 1) }) }, // 1
      { key: 'acme', value: kit.json({ id: 'n2', customerId: 'acme', event: 'api_call', timestamp: Date.UTC(2026, 2, 1) }) }, // 1
      { key: 'acme', value: Buffer.from(JSON.stringify({ specversion: '1.0', id: 'e3', source: '/svc-a', type: 'api_call', time: '2026-03-01T12:00:00Z' })) },
    ]);
    const consumer = await kit.startConsumer();
    await waitFor(() => consumer.counters().consumed >= 6, { description: '6 messages consumed', timeoutMs: 60_000 });
    // Redelivered by their producers, later: the same (source, id), the same usage, nothing more.
    await kit.produce([
      { key: 'acme', value: structured('/svc-a', 'e1', 'api_call', {}) },
      binary('/svc-a', 'e2', 'tokens_used', { tokens: 2500 }),
    ]);
    await waitFor(() => consumer.counters().consumed >= 8, { description: '8 messages consumed', timeoutMs: 60_000 });

    expect(await kit.balanceOf(acme)).toBe('93.5'); // 100 − 1 − 1 − 2.5 − 1 − 1
    expect(consumer.counters()).toMatchObject({ matched: 5, deadLettered: 1 });
    const [letter] = await kit.readTopic(kit.dlqTopic, 1);
    expect(letter!.headers![DEAD_LETTER_HEADERS.reason]!.toString()).toMatch(/subject \(the customer id\) is missing/);
    const ids = (await kit.streamOf(acme)).map((event) => (event.data as { usage?: { eventId: string } | null }).usage?.eventId).filter(Boolean);
    expect(ids).toEqual(expect.arrayContaining(['ce:6:/svc-a:e1', 'ce:6:/svc-b:e1', 'ce:6:/svc-a:e2']));
  });
});
