import { MAX_PERIOD_DAYS, MAX_PLAN_ITEMS, planToDto, type PlanItemDto, type SubscriptionService } from '@tally/subscriptions';
import type { FastifyInstance } from 'fastify';
import { credits, errorResponses, identifier, nullableCredits } from '../apiSchemas';
import { pageOf, pageQuerystring, pageSchema, pageSize, type PageQuery } from '../pagination';

export interface PlanRouteDeps {
  readonly subscriptions: SubscriptionService;
}

/** `"month"`, `"year"` or `{ "days": n }`: one field, so a plan reads the way it is billed. */
export const periodSchema = {
  description: `"month" (calendar months from the start, day clamped to short months), "year", or { "days": n } with n from 1 to ${MAX_PERIOD_DAYS}.`,
  anyOf: [
    { type: 'string', enum: ['month', 'year'] },
    {
      type: 'object',
      additionalProperties: false,
      required: ['days'],
      properties: { days: { type: 'integer', minimum: 1, maximum: MAX_PERIOD_DAYS } },
    },
  ],
} as const;

const planSchema = {
  type: 'object',
  required: ['id', 'name', 'items'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    items: {
      type: 'array',
      items: {
        type: 'object',
        required: ['productId', 'creditsPerPeriod', 'period', 'lowBalanceThreshold'],
        properties: {
          productId: { type: 'string' },
          creditsPerPeriod: { type: 'string' },
          period: periodSchema,
          lowBalanceThreshold: { type: ['string', 'null'] },
        },
      },
    },
  },
} as const;

const tags = ['plans and subscriptions'];

/** Billing plans: what each credit product in them grants per period. Immutable once created. */
export function plans(app: FastifyInstance, deps: PlanRouteDeps): void {
  app.post<{ Body: { id?: string; name: string; items: PlanItemDto[] } }>(
    '/plans',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Create a plan',
        description:
          'Each item grants `creditsPerPeriod` of a credit product every `period`; `lowBalanceThreshold` applies to the balances the plan opens (absent or null: the product\'s). One item per product. A plan cannot be changed: subscriptions override per customer, and a new offer is a new plan. An unknown product is 404 `product_not_found`; a taken id is 409.',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'items'],
          properties: {
            id: { ...identifier, description: 'Generated (a UUID) when absent.' },
            name: { type: 'string', minLength: 1, maxLength: 256 },
            items: {
              type: 'array',
              minItems: 1,
              maxItems: MAX_PLAN_ITEMS,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['productId', 'creditsPerPeriod', 'period'],
                properties: {
                  productId: identifier,
                  creditsPerPeriod: { ...credits, description: 'Greater than 0.' },
                  period: periodSchema,
                  lowBalanceThreshold: nullableCredits,
                },
              },
            },
          },
        },
        response: { 201: planSchema, ...errorResponses },
      },
    },
    async (request, reply) => reply.code(201).send(planToDto(await deps.subscriptions.createPlan(request.body))),
  );

  app.get<{ Querystring: PageQuery }>(
    '/plans',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'List plans',
        description: 'In id order, a page at a time.',
        querystring: { type: 'object', additionalProperties: false, properties: pageQuerystring },
        response: { 200: pageSchema(planSchema), ...errorResponses },
      },
    },
    async (request) => {
      const size = pageSize(request.query);
      const fetched = await deps.subscriptions.listPlans({ after: request.query.after ?? null, limit: size + 1 });
      const page = pageOf(fetched, size, (plan) => plan.id);
      return { items: page.items.map(planToDto), next: page.next };
    },
  );

  app.get<{ Params: { planId: string } }>(
    '/plans/:planId',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'Get a plan',
        params: { type: 'object', additionalProperties: false, required: ['planId'], properties: { planId: identifier } },
        response: { 200: planSchema, ...errorResponses },
      },
    },
    async (request) => planToDto(await deps.subscriptions.getPlan(request.params.planId)),
  );
}
