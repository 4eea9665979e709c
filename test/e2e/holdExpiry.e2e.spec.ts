import { createTestSchema, freePort, stackConfig, startTallyProcess, uniqueName, waitFor, type TallyProcess, type TestSchema } from '@tally/test-support';

/**
 * The main job as deployed (issue 15): a hold placed over HTTP and left alone is freed by the
 * scheduler role's expiry worker, and every figure shows it; its gauges are on /metrics.
 */
jest.setTimeout(120_000);

describe('hold expiry in the main job', () => {
  let db: TestSchema;
  let tally: TallyProcess | undefined;
  const key = 'hold-expiry-e2e-key-0123456789';

  afterAll(async () => {
    await tally?.kill('SIGTERM');
    await db?.drop();
  });

  it('frees a hold nobody captured or released once its expiresAt has passed', async () => {
    db = await createTestSchema({ prefix: 'hold_expiry_e2e' });
    const port = await freePort();
    tally = await startTallyProcess({
      env: {
        TALLY_ROLES: 'projector,api,scheduler',
        TALLY_DATABASE_URL: stackConfig.testDatabaseUrl,
        TALLY_DATABASE_SCHEMA: db.schema,
        TALLY_REDIS_KEY_PREFIX: uniqueName('hold_expiry_e2e'),
        TALLY_API_PORT: String(port),
        TALLY_API_KEYS: key,
      },
    });
    const api = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    expect((await api('POST', '/v1/credit-products', { id: 'renders', name: 'Renders' })).status).toBe(201);
    const opened = await api('POST', '/v1/customers/acme/credit-balances', { productId: 'renders', startingBalance: '10' });
    const balanceId = opened.body.id as string;
    const placed = await api('POST', `/v1/credit-balances/${balanceId}/holds`, { credits: '4', expiresInSeconds: 1 }, { 'idempotency-key': 'render-1' });
    expect(placed).toMatchObject({ status: 201, body: { status: 'open', credits: '4', available: '6' } });

    const freed = await waitFor(
      async () => {
        const { body } = await api('GET', `/v1/credit-balances/${balanceId}?consistent=true`);
        return body.held === '0' ? body : undefined;
      },
      { description: 'the hold to expire', timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(freed).toMatchObject({ balance: '10', held: '0', available: '10' });
    const ledger = await api('GET', `/v1/credit-balances/${balanceId}/ledger`);
    expect((ledger.body.items as { type: string }[]).map((entry) => entry.type)).toEqual(['HoldExpired', 'CreditsHeld', 'CreditToppedUp', 'CreditBalanceOpened']);
    // Capturing it now is refused: it is no longer open.
    const capture = await api('POST', `/v1/holds/${encodeURIComponent(placed.body.id as string)}/capture`, {});
    expect(capture).toMatchObject({ status: 409, body: { error: 'hold_not_open' } });
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toContain('# TYPE tally_hold_expiry_lag_events gauge');
    expect(metrics).toMatch(/^tally_hold_expiry_leading 1$/m);
  });
});
