import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPostgresCatalogStore } from '@tally/catalog';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, createPurchaseService } from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceReadModel } from '@tally/projections';
import { WEBHOOK_EVENT_TYPES } from '@tally/schemas';
import { createTestSchema, stackConfig, uniqueName, type TestSchema } from '@tally/test-support';
import { createPostgresWebhookStore, createWebhookEndpointService, createWebhookSender, type WebhookStore } from '@tally/webhooks';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../buildApp';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const ADMIN = 'admin-key-0123456789abcdef';
const READER = 'reader-key-0123456789abcdef';
const OPS = 'ops-key-0123456789abcdef';
const admin = { authorization: `Bearer ${ADMIN}` };
const ops = { authorization: `Bearer ${OPS}` };
// Key ids computed apart from the code under test: the first 12 hex digits of the key's SHA-256.
const BY_ADMIN = { keyId: createHash('sha256').update(ADMIN).digest('hex').slice(0, 12), keyName: null };
const BY_OPS = { keyId: createHash('sha256').update(OPS).digest('hex').slice(0, 12), keyName: 'hooks-ops' };

describe('/v1/webhook-endpoints', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let redis: Redis;
  let store: WebhookStore;
  let open: FastifyInstance;
  let strict: FastifyInstance;

  async function appWith(allowPrivateNetworks: boolean): Promise<FastifyInstance> {
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    return buildApp({
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix: uniqueName('webhook_routes') }),
      eventStore,
      apiKeys: [ADMIN, { key: READER, scopes: ['read'] }, { key: OPS, scopes: ['admin'], name: 'hooks-ops' }],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      webhooks: createWebhookEndpointService({
        store,
        eventStore,
        secretGraceMs: 3_600_000,
        clock: () => new Date(),
        allowPrivateNetworks,
        send: createWebhookSender({ allowPrivateNetworks, connectTimeoutMs: 2_000, responseTimeoutMs: 5_000 }),
      }),
    });
  }

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'webhook_routes' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    redis = new Redis(stackConfig.redisUrl);
    store = createPostgresWebhookStore(db.pool);
    open = await appWith(true);
    strict = await appWith(false);
  });

  afterAll(async () => {
    await open?.close();
    await strict?.close();
    redis?.disconnect();
    await eventStore?.close();
    await db?.drop();
  });

  it('refuses a loopback, private or metadata URL without the setting: 422 webhook_url_refused', async () => {
    // Other tests of this file keep endpoints in the same schema: a refusal must add none to them.
    const list = async () => (await strict.inject({ method: 'GET', url: '/v1/webhook-endpoints', headers: admin })).json();
    const before = await list();
    for (const url of ['http://127.0.0.1:9000/hook', 'http://10.1.2.3/hook', 'http://169.254.169.254/latest/meta-data', 'http://localhost/hook']) {
      const response = await strict.inject({ method: 'POST', url: '/v1/webhook-endpoints', headers: admin, payload: { url, events: ['credit_balance.low'] } });
      expect([url, response.statusCode, response.json().error]).toEqual([url, 422, 'webhook_url_refused']);
    }
    expect(await list()).toEqual(before);
  });

  it('creates, lists, changes, rotates and deletes an endpoint; only creation and rotation show the secret', async () => {
    const created = await open.inject({
      method: 'POST',
      url: '/v1/webhook-endpoints',
      headers: admin,
      payload: { url: 'http://127.0.0.1:9000/hook', events: ['credit_balance.low', 'credit_balance.depleted'], description: 'billing alerts' },
    });
    expect(created.statusCode).toBe(201);
    const endpoint = created.json();
    expect(endpoint).toMatchObject({
      url: 'http://127.0.0.1:9000/hook',
      events: ['credit_balance.low', 'credit_balance.depleted'],
      description: 'billing alerts',
      enabled: true,
      disabledReason: null,
      previousSecretExpiresAt: null,
      createdBy: BY_ADMIN,
      updatedBy: null,
    });
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);

    const read = await open.inject({ method: 'GET', url: `/v1/webhook-endpoints/${endpoint.id}`, headers: admin });
    expect(read.statusCode).toBe(200);
    expect(read.json().secret).toBeUndefined();
    const listed = await open.inject({ method: 'GET', url: '/v1/webhook-endpoints?limit=10', headers: admin });
    expect(listed.json().items.map((item: { id: string }) => item.id)).toContain(endpoint.id);

    const changed = await open.inject({ method: 'PATCH', url: `/v1/webhook-endpoints/${endpoint.id}`, headers: admin, payload: { events: ['hold.expired'], enabled: false } });
    expect(changed.json()).toMatchObject({ events: ['hold.expired'], enabled: false, disabledReason: 'disabled by request' });
    const enabled = await open.inject({ method: 'PATCH', url: `/v1/webhook-endpoints/${endpoint.id}`, headers: ops, payload: { enabled: true } });
    expect(enabled.json()).toMatchObject({ enabled: true, disabledReason: null, createdBy: BY_ADMIN, updatedBy: BY_OPS });

    const rotated = await open.inject({ method: 'POST', url: `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, headers: admin });
    expect(rotated.statusCode).toBe(200);
    expect(rotated.json()).toMatchObject({ createdBy: BY_ADMIN, updatedBy: BY_ADMIN });
    expect(rotated.json().secret).not.toBe(endpoint.secret);
    expect(Date.parse(rotated.json().previousSecretExpiresAt)).toBeGreaterThan(Date.now());

    const deleted = await open.inject({ method: 'DELETE', url: `/v1/webhook-endpoints/${endpoint.id}`, headers: admin });
    expect(deleted.statusCode).toBe(204);
    const gone = await open.inject({ method: 'GET', url: `/v1/webhook-endpoints/${endpoint.id}`, headers: admin });
    expect([gone.statusCode, gone.json().error]).toEqual([404, 'webhook_endpoint_not_found']);
  });

  it('shows deliveries with every attempt, and retries one by hand', async () => {
    const endpoint = (await open.inject({ method: 'POST', url: '/v1/webhook-endpoints', headers: admin, payload: { url: 'http://127.0.0.1:9000/d', events: ['credit_balance.low'] } })).json();
    const startedAt = new Date('2026-11-30T12:00:00.000Z');
    await store.recordDeliveries([{ id: 'msg_1', endpointId: endpoint.id, ledgerEventId: 'e-1', balanceId: 'b-1', position: 7n, eventType: 'credit_balance.low', body: '{}' }], startedAt);
    await store.recordAttempt('msg_1', { attempt: 1, startedAt, durationMs: 12, statusCode: 500, error: null, responseBody: 'boom' }, { status: 'failed', disableReason: 'gave up' });

    const deliveries = await open.inject({ method: 'GET', url: `/v1/webhook-endpoints/${endpoint.id}/deliveries`, headers: admin });
    expect(deliveries.json()).toEqual({
      items: [
        {
          id: 'msg_1',
          eventId: 'e-1',
          eventType: 'credit_balance.low',
          balanceId: 'b-1',
          position: '7',
          status: 'failed',
          attempts: 1,
          nextAttemptAt: null,
          deliveredAt: null,
          createdAt: expect.any(String),
          attemptLog: [{ attempt: 1, startedAt: '2026-11-30T12:00:00.000Z', durationMs: 12, statusCode: 500, error: null, responseBody: 'boom' }],
        },
      ],
      next: null,
    });
    expect((await open.inject({ method: 'GET', url: `/v1/webhook-endpoints/${endpoint.id}`, headers: admin })).json()).toMatchObject({ enabled: false, disabledReason: 'gave up' });

    const retried = await open.inject({ method: 'POST', url: `/v1/webhook-endpoints/${endpoint.id}/deliveries/msg_1/retry`, headers: admin });
    expect(retried.statusCode).toBe(202);
    expect(retried.json()).toMatchObject({ id: 'msg_1', status: 'pending' });
    const unknown = await open.inject({ method: 'POST', url: `/v1/webhook-endpoints/${endpoint.id}/deliveries/msg_2/retry`, headers: admin });
    expect([unknown.statusCode, unknown.json().error]).toEqual([404, 'webhook_delivery_not_found']);
  });

  it('documents the routes and, as OpenAPI webhooks, every payload with its signature headers at /docs', async () => {
    const document = (await open.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(document.paths).filter((route: string) => route.includes('webhook')).sort()).toEqual([
      '/v1/webhook-endpoints',
      '/v1/webhook-endpoints/{endpointId}',
      '/v1/webhook-endpoints/{endpointId}/deliveries',
      '/v1/webhook-endpoints/{endpointId}/deliveries/{deliveryId}/retry',
      '/v1/webhook-endpoints/{endpointId}/rotate-secret',
      '/v1/webhook-endpoints/{endpointId}/test',
    ]);
    expect(Object.keys(document.webhooks).sort()).toEqual([...WEBHOOK_EVENT_TYPES].sort());
    const low = document.webhooks['credit_balance.low'].post;
    expect(low.parameters.map((parameter: { name: string }) => parameter.name)).toEqual(['webhook-id', 'webhook-timestamp', 'webhook-signature']);
    expect(Object.keys(low.requestBody.content['application/json'].schema.properties.data.properties.balance.properties)).toEqual(
      expect.arrayContaining(['balance', 'held', 'available']),
    );
  });

  it('sends an example message signed as a delivery, answers what the receiver said, and records nothing', async () => {
    // A receiver of the test's own: 204, or 500 with a message when asked to fail.
    const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
    let failing = false;
    const receiver = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
        if (failing) response.writeHead(500).end('receiver broke');
        else response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
      const created = await open.inject({ method: 'POST', url: '/v1/webhook-endpoints', headers: admin, payload: { url: hookUrl, events: ['credit_balance.topped_up', 'credit_balance.low'] } });
      const { id, secret } = created.json();
      const test = (app: FastifyInstance, payload: object) => app.inject({ method: 'POST', url: `/v1/webhook-endpoints/${id}/test`, headers: admin, payload });

      const first = await test(open, {});
      expect(first.statusCode).toBe(200);
      expect(first.json()).toMatchObject({ eventType: 'credit_balance.topped_up', delivered: true, statusCode: 204, error: null });
      const [message] = received;
      expect(first.json().webhookId).toMatch(/^test_/);
      expect(message!.headers['webhook-id']).toBe(first.json().webhookId);
      // The signature as any Standard Webhooks verifier checks it, computed apart from the code under test.
      const expected = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
        .update(`${message!.headers['webhook-id']}.${message!.headers['webhook-timestamp']}.${message!.body}`)
        .digest('base64');
      expect(String(message!.headers['webhook-signature']).split(' ')).toContain(`v1,${expected}`);
      expect(JSON.parse(message!.body)).toMatchObject({ type: 'credit_balance.topped_up', data: { eventType: 'CreditToppedUp', balance: { id: 'example-balance' } } });

      failing = true;
      const refused = await test(open, { eventType: 'credit_balance.low' });
      expect(refused.json()).toMatchObject({ eventType: 'credit_balance.low', delivered: false, statusCode: 500, responseBody: 'receiver broke' });
      expect(JSON.parse(received[1]!.body).type).toBe('credit_balance.low');
      // Without private networks allowed, the same address is refused when connecting.
      const guarded = await test(strict, {});
      expect(guarded.json()).toMatchObject({ delivered: false, statusCode: null, error: expect.stringContaining('non-public') });
      expect(received).toHaveLength(2);
      // A test is no delivery: nothing recorded, nothing retried.
      expect((await open.inject({ method: 'GET', url: `/v1/webhook-endpoints/${id}/deliveries`, headers: admin })).json().items).toEqual([]);
      // No body at all (so no content-type either), as the body is optional: the default type.
      failing = false;
      const bare = await open.inject({ method: 'POST', url: `/v1/webhook-endpoints/${id}/test`, headers: admin });
      expect([bare.statusCode, bare.json()]).toEqual([200, expect.objectContaining({ eventType: 'credit_balance.topped_up', delivered: true })]);
      expect(JSON.parse(received[2]!.body).type).toBe('credit_balance.topped_up');

      const unknownType = await test(open, { eventType: 'credit_balance.exploded' });
      expect(unknownType.statusCode).toBe(400);
      const missing = await open.inject({ method: 'POST', url: '/v1/webhook-endpoints/no-such-endpoint/test', headers: admin, payload: {} });
      expect([missing.statusCode, missing.json().error]).toEqual([404, 'webhook_endpoint_not_found']);
      await open.inject({ method: 'DELETE', url: `/v1/webhook-endpoints/${id}`, headers: admin });
    } finally {
      await new Promise((resolve) => receiver.close(resolve));
    }
  });

  it('refuses unknown event types and keys without the admin scope', async () => {
    const unknown = await open.inject({ method: 'POST', url: '/v1/webhook-endpoints', headers: admin, payload: { url: 'http://127.0.0.1/x', events: ['balance.exploded'] } });
    expect(unknown.statusCode).toBe(400);
    const none = await open.inject({ method: 'POST', url: '/v1/webhook-endpoints', headers: admin, payload: { url: 'http://127.0.0.1/x', events: [] } });
    expect(none.statusCode).toBe(400);
    const reader = await open.inject({ method: 'GET', url: '/v1/webhook-endpoints', headers: { authorization: `Bearer ${READER}` } });
    expect(reader.statusCode).toBe(403);
  });
});
