import { subscriptionView, type CreditOverrideDto, type SubscriptionService } from '@tally/subscriptions';
import type { FastifyInstance } from 'fastify';
import { customerId, errorResponses, identifier, nullableCredits } from '../apiSchemas';
import { pageOf, pageQuerystring, pageSchema, pageSize, type PageQuery } from '../pagination';
import { periodSchema } from './plans';

export interface SubscriptionRouteDeps {
  readonly subscriptions: SubscriptionService;
}

interface SubscriptionParams {
  subscriptionId: string;
}

const overridesSchema = {
  type: 'array',
  maxItems: 100,
  description:
    "Per product of the plan: `creditsPerPeriod` and/or `lowBalanceThreshold` for this subscription only; absent or null takes the plan's.",
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['productId'],
    properties: {
      productId: identifier,
      creditsPerPeriod: { ...nullableCredits, description: 'Greater than 0.' },
      lowBalanceThreshold: nullableCredits,
    },
  },
} as const;

const nullableString = { type: ['string', 'null'] } as const;

const subscriptionSchema = {
  type: 'object',
  required: ['id', 'customerId', 'planId', 'startsAt', 'status', 'canceledAt', 'createdAt', 'items', 'overrides'],
  properties: {
    id: { type: 'string' },
    customerId: { type: 'string' },
    planId: { type: 'string' },
    startsAt: { type: 'string', format: 'date-time' },
    status: { type: 'string', enum: ['active', 'canceled'] },
    canceledAt: { type: ['string', 'null'], format: 'date-time' },
    createdAt: { type: 'string', format: 'date-time' },
    items: {
      type: 'array',
      description: "Each plan item's standing now.",
      items: {
        type: 'object',
        required: ['productId', 'period', 'currentPeriod', 'creditsPerPeriod', 'lowBalanceThreshold', 'grantedThrough', 'finalPeriod'],
        properties: {
          productId: { type: 'string' },
          period: periodSchema,
          currentPeriod: {
            type: ['object', 'null'],
            description: 'The period in progress (0-based index, start inclusive, end exclusive); null before the start.',
            properties: { index: { type: 'integer' }, start: { type: 'string' }, end: { type: 'string' } },
          },
          creditsPerPeriod: { type: 'string', description: 'In force for the current period (period 0 before the start).' },
          lowBalanceThreshold: nullableString,
          grantedThrough: { type: ['integer', 'null'], description: 'The last period known to be granted.' },
          finalPeriod: { type: ['integer', 'null'], description: 'When canceled: the last period that grants (-1: none).' },
        },
      },
    },
    overrides: {
      type: 'array',
      description: 'Every override version; each applies from `effectiveFromPeriod` until a later version of the same product.',
      items: {
        type: 'object',
        required: ['productId', 'effectiveFromPeriod', 'creditsPerPeriod', 'lowBalanceThreshold'],
        properties: {
          productId: { type: 'string' },
          effectiveFromPeriod: { type: 'integer' },
          creditsPerPeriod: nullableString,
          lowBalanceThreshold: nullableString,
        },
      },
    },
  },
} as const;

const subscriptionParams = {
  type: 'object',
  additionalProperties: false,
  required: ['subscriptionId'],
  properties: { subscriptionId: identifier },
} as const;

const tags = ['plans and subscriptions'];

/** Subscriptions: a customer on a plan, granted credits every period by the grant scheduler. */
export function subscriptions(app: FastifyInstance, deps: SubscriptionRouteDeps): void {
  const service = deps.subscriptions;

  app.post<{ Body: { id?: string; customerId: string; planId: string; startsAt?: string; overrides?: CreditOverrideDto[] } }>(
    '/subscriptions',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        summary: 'Subscribe a customer to a plan',
        description:
          "Opens the customer's balance of each plan product where there is none (else uses it) and grants every period that has started, so a subscription starting now has its first period's credits when this returns (`grantedThrough` shows it; if the ledger is unavailable the scheduler grants shortly). An unknown plan is 404 `plan_not_found`.",
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['customerId', 'planId'],
          properties: {
            id: { ...identifier, description: 'Generated (a UUID) when absent; a retry with the same id is 409 rather than a second subscription.' },
            customerId,
            planId: identifier,
            startsAt: { type: 'string', format: 'date-time', description: 'Start of period 0; default now.' },
            overrides: overridesSchema,
          },
        },
        response: { 201: subscriptionSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { startsAt, ...input } = request.body;
      const details = await service.createSubscription({ ...input, ...(startsAt !== undefined ? { startsAt: new Date(startsAt) } : {}) });
      return reply.code(201).send(subscriptionView(details));
    },
  );

  app.get<{ Params: SubscriptionParams }>(
    '/subscriptions/:subscriptionId',
    {
      config: { scope: 'read' },
      schema: { tags, summary: 'Get a subscription', params: subscriptionParams, response: { 200: subscriptionSchema, ...errorResponses } },
    },
    async (request) => subscriptionView(await service.getSubscription(request.params.subscriptionId)),
  );

  app.get<{ Params: { customerId: string }; Querystring: PageQuery }>(
    '/customers/:customerId/subscriptions',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: "List a customer's subscriptions",
        description: 'Canceled ones too, in id order, a page at a time.',
        params: { type: 'object', additionalProperties: false, required: ['customerId'], properties: { customerId } },
        querystring: { type: 'object', additionalProperties: false, properties: pageQuerystring },
        response: { 200: pageSchema(subscriptionSchema), ...errorResponses },
      },
    },
    async (request) => {
      const size = pageSize(request.query);
      const fetched = await service.listCustomerSubscriptions(request.params.customerId, { after: request.query.after ?? null, limit: size + 1 });
      const page = pageOf(fetched, size, (details) => details.subscription.id);
      return { items: page.items.map(subscriptionView), next: page.next };
    },
  );

  app.patch<{ Params: SubscriptionParams; Body: { overrides: CreditOverrideDto[] } }>(
    '/subscriptions/:subscriptionId',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        summary: "Change a subscription's overrides from the next period",
        description:
          "`overrides` is the complete list from each item's next period on (a product left out goes back to the plan's terms); the period in progress keeps the terms it started with. A canceled subscription is 409 `subscription_canceled`.",
        params: subscriptionParams,
        body: { type: 'object', additionalProperties: false, required: ['overrides'], properties: { overrides: overridesSchema } },
        response: { 200: subscriptionSchema, ...errorResponses },
      },
    },
    async (request) => subscriptionView(await service.changeOverrides(request.params.subscriptionId, request.body.overrides)),
  );

  app.post<{ Params: SubscriptionParams }>(
    '/subscriptions/:subscriptionId/cancel',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        summary: 'Cancel a subscription',
        description:
          'The period in progress keeps its grant (granted now if it was not yet); no period after it grants. Canceling again changes nothing and answers the subscription.',
        params: subscriptionParams,
        response: { 200: subscriptionSchema, ...errorResponses },
      },
    },
    async (request) => subscriptionView(await service.cancelSubscription(request.params.subscriptionId)),
  );
}
