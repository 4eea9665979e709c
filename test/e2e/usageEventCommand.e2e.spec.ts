import { randomUUID } from 'node:crypto';
import { createTestKafka, runTallyCommand, startWholeMainJob, uniqueName, waitFor, type WholeMainJob } from '@tally/test-support';

jest.setTimeout(120_000);

const KEY = 'usage-event-command-test-key';

/**
 * `tally usage-event` as an operator runs it beside a deployment: usage sent to the main job over
 * HTTP and metered by its consumer, then looked up by the built command against the same event
 * store. Its JSON is the API's answer, field for field.
 */
describe('tally usage-event', () => {
  let job: WholeMainJob | undefined;

  beforeAll(async () => {
    job = await startWholeMainJob({ prefix: 'usage_event_cli', apiKey: KEY });
  });

  afterAll(async () => {
    await job?.stop();
  });

  const api = async (method: string, url: string, body?: unknown) => {
    const response = await fetch(`${job!.base}/v1${url}`, {
      method,
      headers: { authorization: `Bearer ${KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  // The main job's own environment: the same schema, and the same Redis prefix for its dead-letter log.
  const tally = (...args: string[]) => runTallyCommand(args, { ...job!.env, TALLY_DATABASE_URL: job!.db.connectionString });

  it("prints a metered event's entries per balance, its JSON as the API answers it, and exits 3 for one not metered", async () => {
    const customerId = `cli-${randomUUID()}`;
    expect((await api('POST', '/credit-products', { id: 'renders', name: 'Renders', consumption: [{ event: 'render', credits: '2.5' }] })).status).toBe(201);
    // Asked before the customer has a balance: the API's registry cache keeps "none" for them,
    // until the registration's NOTIFY drops it, or the lookups below would never find the charge.
    expect((await api('GET', `/customers/${customerId}/usage-events/render-1`)).body).toMatchObject({ metered: false, balances: [] });
    const opened = await api('POST', `/customers/${customerId}/credit-balances`, { productId: 'renders', startingBalance: '10' });
    expect(opened.status).toBe(201);
    const balanceId = opened.body.id as string;
    const events = [
      { id: 'render-1', customerId, event: 'render', timestamp: new Date().toISOString() },
      { id: 'view-1', customerId, event: 'page_view', timestamp: new Date().toISOString() },
    ];
    expect((await api('POST', '/usage-events', { events })).status).toBe(202);
    const answered = await waitFor(
      async () => {
        const [charged, free] = await Promise.all([api('GET', `/customers/${customerId}/usage-events/render-1`), api('GET', `/customers/${customerId}/usage-events/view-1`)]);
        return charged.body.metered === true && free.body.metered === true ? charged.body : undefined;
      },
      { description: 'both events metered', timeoutMs: 60_000, intervalMs: 200 },
    );

    const printed = await tally('usage-event', customerId, 'render-1');
    expect(printed).toMatchObject({ code: 0, stderr: '' });
    const [verdict, header, ...rows] = printed.stdout.trimEnd().split('\n');
    expect(verdict).toBe('metered, on 1 balance');
    expect(header!.split(/ {2,}/)).toEqual(['balance', 'product', 'entry', 'type', 'credits', 'balance after', 'recorded']);
    expect(rows.map((row) => row.split(/ {2,}/).slice(0, 6))).toEqual([[balanceId, 'renders', expect.any(String), 'CreditConsumed', '2.5', '7.5']]);

    const json = await tally('usage-event', customerId, 'render-1', '--json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(answered);

    expect(await tally('usage-event', customerId, 'view-1')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^metered, charging nothing/) });
    const missing = await tally('usage-event', customerId, 'never-sent');
    expect(missing).toMatchObject({
      code: 3,
      stdout: `not metered: still on the usage topic, or dead-lettered from bytes that name no usage event (GET /v1/dead-letters?key=${customerId})\n`,
    });
  });

  it('says an event was dead-lettered, with its letters and why, and exits 3', async () => {
    const customerId = `cli-${randomUUID()}`;
    // Straight onto the usage topic: the API would have refused it.
    const producer = createTestKafka(uniqueName('usage_event_cli')).producer();
    await producer.connect();
    try {
      await producer.send({ topic: job!.env.TALLY_USAGE_TOPIC!, messages: [{ key: customerId, value: JSON.stringify({ id: 'bad-1', customerId, event: 'render', timestamp: 'soon' }) }] });
    } finally {
      await producer.disconnect();
    }
    const answered = await waitFor(
      async () => {
        const found = await api('GET', `/customers/${customerId}/usage-events/bad-1`);
        return (found.body.deadLetters as unknown[] | undefined)?.length === 1 ? found.body : undefined;
      },
      { description: "the event's dead letter recorded", timeoutMs: 60_000, intervalMs: 200 },
    );
    const [letter] = answered.deadLetters as Array<{ partition: number; offset: string }>;

    const printed = await tally('usage-event', customerId, 'bad-1');
    expect(printed).toMatchObject({ code: 3, stderr: '' });
    const [verdict, title, header, ...rows] = printed.stdout.trimEnd().split('\n');
    expect(verdict).toBe('not metered: dead-lettered');
    expect(title).toBe('dead letters of it (1, newest first)');
    expect(header!.split(/ {2,}/)).toEqual(['letter', 'dead-lettered', 'error code', 'sent back', 'reason']);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(new RegExp(`^${letter!.partition}:${letter!.offset} .* invalid_usage_event +timestamp must be epoch milliseconds or an ISO-8601 string$`));
    expect(JSON.parse((await tally('usage-event', customerId, 'bad-1', '--json')).stdout)).toEqual(answered);
  });
});
