import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { WEBHOOK_EVENT_TYPES } from '@tally/schemas';
import type { WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEndpointService } from '@tally/webhooks';
import { actingKey, errorResponses, identifier, nullableString, params, stringEnum } from '../apiSchemas';
import { actingKeyOf } from '../accessGuard';
import { beforePageQuery, fetchPage, pageOf, pageQuery, pageSchema, pageSize } from '../pagination';

interface WebhookRoutesOptions {
  readonly webhooks: WebhookEndpointService;
}

const tags = ['webhooks'];
const MAX_URL_LENGTH = 2048;

const endpointParams = params({ endpointId: identifier });
const url = Type.String({ minLength: 1, maxLength: MAX_URL_LENGTH, description: 'http or https; must not resolve to a loopback, private, link-local or metadata address.' });
const events = Type.Array(stringEnum(WEBHOOK_EVENT_TYPES), { minItems: 1, maxItems: WEBHOOK_EVENT_TYPES.length * 2, description: 'Webhook event types sent to the endpoint.' });
const description = nullableString({ maxLength: 500 });
const nullableTime = nullableString({ format: 'date-time' });

const WebhookEndpointSchema = Type.Object({
  id: Type.String(),
  url: Type.String(),
  description,
  events: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  disabledAt: nullableTime,
  disabledReason: nullableString({ description: 'Why it was disabled: every attempt of a delivery failed for the retry period, or by request.' }),
  previousSecretExpiresAt: nullableString({ format: 'date-time', description: 'Until when messages are also signed with the secret a rotation replaced.' }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  createdBy: actingKey('The API key that registered the endpoint; null for one from before this was recorded.'),
  updatedBy: actingKey('The API key of the last change (`updatedAt`): a PATCH or a secret rotation. Null when there was none, or when Tally made it (disabling the endpoint after failed retries).'),
});
const WithSecretSchema = Type.Intersect([
  WebhookEndpointSchema,
  Type.Object({ secret: Type.String({ description: 'The signing secret, `whsec_` + base64, for any Standard Webhooks library. Shown only here.' }) }),
]);

const AttemptSchema = Type.Object({
  attempt: Type.Integer(),
  startedAt: Type.String({ format: 'date-time' }),
  durationMs: Type.Integer(),
  statusCode: Type.Unsafe<number | null>({ type: ['integer', 'null'], description: "The receiver's status; null when none came (refused, timed out)." }),
  error: nullableString(),
  responseBody: nullableString({ description: 'The first KiB of the response body.' }),
});
const DeliverySchema = Type.Object({
  id: Type.String({ description: 'The webhook-id: the same for every attempt.' }),
  eventId: Type.String({ description: 'The ledger event that raised the webhook.' }),
  eventType: Type.String(),
  balanceId: Type.String(),
  position: Type.String(),
  status: stringEnum(['pending', 'succeeded', 'failed']),
  attempts: Type.Integer(),
  nextAttemptAt: nullableTime,
  deliveredAt: nullableTime,
  createdAt: Type.String({ format: 'date-time' }),
  attemptLog: Type.Array(AttemptSchema),
});

const TestResultSchema = Type.Object({
  webhookId: Type.String({ description: 'The test message\'s webhook-id: `test_` and a random part, never a delivery\'s.' }),
  eventType: stringEnum(WEBHOOK_EVENT_TYPES),
  delivered: Type.Boolean({ description: 'The receiver answered 2xx, as a delivery would need.' }),
  statusCode: Type.Unsafe<number | null>({ type: ['integer', 'null'], description: "The receiver's status; null when none came (refused, timed out)." }),
  error: nullableString(),
  responseBody: nullableString({ description: 'The first KiB of the response body.' }),
  durationMs: Type.Integer(),
});

/** What an endpoint's test message came to, as the API answers it. */
export type WebhookTestResultView = Static<typeof TestResultSchema>;

/** A webhook endpoint as the API answers it (the console's type of it). */
export type WebhookEndpointView = Static<typeof WebhookEndpointSchema>;
/** A delivery with its attempts, as the API answers it. */
export type WebhookDeliveryView = Static<typeof DeliverySchema>;

function endpointView(endpoint: WebhookEndpoint): WebhookEndpointView {
  return {
    id: endpoint.id,
    url: endpoint.url,
    description: endpoint.description,
    events: [...endpoint.events],
    enabled: endpoint.disabled === null,
    disabledAt: endpoint.disabled?.at.toISOString() ?? null,
    disabledReason: endpoint.disabled?.reason ?? null,
    previousSecretExpiresAt: endpoint.previousSecret?.until.toISOString() ?? null,
    createdAt: endpoint.createdAt.toISOString(),
    updatedAt: endpoint.updatedAt.toISOString(),
    createdBy: endpoint.createdBy,
    updatedBy: endpoint.updatedBy,
  };
}

function attemptView(attempt: WebhookAttempt): Static<typeof AttemptSchema> {
  return { ...attempt, startedAt: attempt.startedAt.toISOString() };
}

function deliveryView(delivery: WebhookDelivery, attemptLog: readonly WebhookAttempt[] = []): WebhookDeliveryView {
  return {
    id: delivery.id,
    eventId: delivery.ledgerEventId,
    eventType: delivery.eventType,
    balanceId: delivery.balanceId,
    position: delivery.position.toString(),
    status: delivery.status,
    attempts: delivery.attempts,
    nextAttemptAt: delivery.nextAttemptAt?.toISOString() ?? null,
    deliveredAt: delivery.deliveredAt?.toISOString() ?? null,
    createdAt: delivery.createdAt.toISOString(),
    attemptLog: attemptLog.map(attemptView),
  };
}

/**
 * Webhook endpoints: where Tally POSTs balance events, signed as Standard Webhooks says (see the
 * README's "Webhooks" for the payloads and the guarantees). Managing them is an admin's job.
 */
export const webhookRoutes: FastifyPluginAsyncTypebox<WebhookRoutesOptions> = async (app, { webhooks }) => {
  app.post(
    '/webhook-endpoints',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        operationId: 'createWebhookEndpoint',
        summary: 'Register a webhook endpoint',
        description:
          'The endpoint receives the chosen events that happen from now on, each signed with the returned secret (headers `webhook-id`, `webhook-timestamp`, `webhook-signature`; verify with any Standard Webhooks library). A URL that is not http(s), carries credentials, or resolves to a loopback, private, link-local or metadata address is 422 `webhook_url_refused` (unless the server allows private networks). A host name that cannot be resolved for now (the resolver failed, not a name that does not exist) is 503 `webhook_url_unresolved`: try again.',
        body: Type.Object({ url, events, description: Type.Optional(description) }, { additionalProperties: false }),
        response: { 201: WithSecretSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const endpoint = await webhooks.create(request.body, actingKeyOf(request));
      return reply.code(201).send({ ...endpointView(endpoint), secret: endpoint.secret });
    },
  );

  app.get(
    '/webhook-endpoints',
    {
      config: { scope: 'admin' },
      schema: { tags, operationId: 'listWebhookEndpoints', summary: 'List webhook endpoints', querystring: pageQuery(), response: { 200: pageSchema(WebhookEndpointSchema), ...errorResponses } },
    },
    async (request) =>
      fetchPage(
        request.query,
        ({ after, limit }) => webhooks.list({ limit, ...(after !== null ? { after } : {}) }),
        (endpoint) => endpoint.id,
        endpointView,
      ),
  );

  app.get(
    '/webhook-endpoints/:endpointId',
    {
      config: { scope: 'admin' },
      schema: { tags, operationId: 'getWebhookEndpoint', summary: 'A webhook endpoint', params: endpointParams, response: { 200: WebhookEndpointSchema, ...errorResponses } },
    },
    async (request) => endpointView(await webhooks.get(request.params.endpointId)),
  );

  app.patch(
    '/webhook-endpoints/:endpointId',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        operationId: 'updateWebhookEndpoint',
        summary: 'Change a webhook endpoint',
        description:
          '`enabled: true` turns a disabled endpoint back on: its waiting deliveries resume, given-up ones included, each balance\'s in ledger order (a given-up delivery before the later ones of its balance; not one whose balance had a later delivery succeed since, which stays given up), with a fresh retry period. `enabled: false` stops deliveries; they wait.',
        params: endpointParams,
        body: Type.Object(
          { url: Type.Optional(url), events: Type.Optional(events), description: Type.Optional(description), enabled: Type.Optional(Type.Boolean()) },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: WebhookEndpointSchema, ...errorResponses },
      },
    },
    async (request) => endpointView(await webhooks.update(request.params.endpointId, request.body, actingKeyOf(request))),
  );

  app.delete(
    '/webhook-endpoints/:endpointId',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        operationId: 'deleteWebhookEndpoint',
        summary: 'Delete a webhook endpoint',
        description: 'With its deliveries and their attempts.',
        params: endpointParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await webhooks.delete(request.params.endpointId);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/webhook-endpoints/:endpointId/rotate-secret',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        operationId: 'rotateWebhookSecret',
        summary: "Rotate a webhook endpoint's secret",
        description:
          'Answers the new secret. Until `previousSecretExpiresAt` every message carries two signatures, one per secret (space-separated, as Standard Webhooks allows), so a receiver can switch to the new secret at leisure. One previous secret is kept: rotating again before `previousSecretExpiresAt` stops the first one signing at once (what a leaked secret needs).',
        params: endpointParams,
        response: { 200: WithSecretSchema, ...errorResponses },
      },
    },
    async (request) => {
      const endpoint = await webhooks.rotateSecret(request.params.endpointId, actingKeyOf(request));
      return { ...endpointView(endpoint), secret: endpoint.secret };
    },
  );

  app.get(
    '/webhook-endpoints/:endpointId/deliveries',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        operationId: 'listWebhookDeliveries',
        summary: "An endpoint's deliveries and their attempts, newest first",
        description:
          'Each delivery with every attempt: when, how long, the status code (or the error when none came) and the first KiB of the answer. Delivered ones are kept `TALLY_WEBHOOKS_RETAIN_DELIVERED_MS` (30 days), pending and given-up ones until sent. Pass `next` back as `before` for the following (older) page.',
        params: endpointParams,
        querystring: beforePageQuery('Deliveries'),
        response: { 200: Type.Object({ items: Type.Array(DeliverySchema), next: nullableString() }), ...errorResponses },
      },
    },
    async (request) => {
      const limit = pageSize(request.query);
      const before = request.query.before === undefined ? undefined : BigInt(request.query.before);
      const fetched = await webhooks.deliveries(request.params.endpointId, { limit: limit + 1, ...(before !== undefined ? { before } : {}) });
      const page = pageOf(fetched, limit, (delivery) => delivery.position.toString());
      return { items: page.items.map((delivery) => deliveryView(delivery, delivery.attemptLog)), next: page.next };
    },
  );

  app.post(
    '/webhook-endpoints/:endpointId/deliveries/:deliveryId/retry',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        operationId: 'retryWebhookDelivery',
        summary: 'Send a delivery again',
        description:
          'Whatever became of it (given up, or even delivered): it is due at once, with a fresh retry period, under the same webhook-id, after any earlier pending delivery of its balance to this endpoint. A disabled endpoint must be enabled first for it to go out.',
        params: params({ endpointId: identifier, deliveryId: identifier }),
        response: { 202: DeliverySchema, ...errorResponses },
      },
    },
    async (request, reply) => reply.code(202).send(deliveryView(await webhooks.retry(request.params.endpointId, request.params.deliveryId))),
  );

  app.post(
    '/webhook-endpoints/:endpointId/test',
    {
      config: { scope: 'admin', optionalBody: true },
      schema: {
        tags,
        operationId: 'testWebhookEndpoint',
        summary: 'Send the endpoint an example message now',
        description:
          'An example of `eventType` (default: the endpoint\'s first event type) on a made-up balance (`example-balance` of `example-customer`), shaped and signed as a delivery is, sent at once (disabled endpoints too) and answered with what the receiver said. Not a delivery: it is neither recorded nor retried, and its webhook-id starts with `test_`. The body may be left out altogether (no content-type either): the default type.',
        params: endpointParams,
        body: Type.Optional(Type.Object({ eventType: Type.Optional(stringEnum(WEBHOOK_EVENT_TYPES)) }, { additionalProperties: false })),
        response: { 200: TestResultSchema, ...errorResponses },
      },
    },
    async (request) => webhooks.sendTest(request.params.endpointId, request.body?.eventType),
  );
};
