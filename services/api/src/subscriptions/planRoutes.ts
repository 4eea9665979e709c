import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { MAX_PERIOD_DAYS, MAX_PLAN_ITEMS, planView, type PlanDto, type SubscriptionService } from '@tally/subscriptions';
import { actingKey, answeredCredits, credits, errorResponses, identifier, nullableAnsweredCredits, nullableCredits, nullableString, params, stringEnum, text } from '../apiSchemas';
import { fetchPage, pageQuery, pageSchema } from '../pagination';
import { actingKeyOf } from '../accessGuard';

/** `"month"`, `"year"` or `{ "days": n }`: one field, so a plan reads the way it is billed. */
export const periodSchema = Type.Union(
  [
    stringEnum(['month', 'year'] as const),
    Type.Object({ days: Type.Integer({ minimum: 1, maximum: MAX_PERIOD_DAYS }) }, { additionalProperties: false }),
  ],
  {
    description: `"month" (calendar months from the start, day clamped to short months), "year", or { "days": n } with n from 1 to ${MAX_PERIOD_DAYS}.`,
  },
);

const planSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  // Typed as the DTO planToDto writes, whose items are also the input's shape (threshold optional there).
  items: Type.Unsafe<PlanDto['items']>(
    Type.Array(Type.Object({ productId: Type.String(), creditsPerPeriod: answeredCredits(), period: periodSchema, lowBalanceThreshold: nullableAnsweredCredits() })),
  ),
  createdAt: Type.String({ format: 'date-time' }),
  createdBy: actingKey('The API key that created the plan; null for one from before this was recorded.'),
  retiredAt: nullableString({ format: 'date-time', description: 'When its offer ended: no new subscriptions since; null while offered.' }),
  retiredBy: actingKey('The API key that retired it; null while offered.'),
});

export const tags = ['plans and subscriptions'];

/** Billing plans: what each credit product in them grants per period. Immutable once created. */
export const planRoutes: FastifyPluginAsyncTypebox<{ readonly subscriptions: SubscriptionService }> = async (app, { subscriptions }) => {
  app.post(
    '/plans',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        operationId: 'createPlan',
        summary: 'Create a plan',
        description:
          'Each item grants `creditsPerPeriod` of a credit product every `period`; `lowBalanceThreshold` applies to the balances the plan opens (absent or null: the product\'s). One item per product. A plan cannot be changed: subscriptions override per customer, and a new offer is a new plan. An unknown product is 404 `product_not_found`; a taken id is 409.',
        body: Type.Object(
          {
            id: Type.Optional(Type.Unsafe<string>({ ...identifier, description: 'Generated (a UUID) when absent.' })),
            name: text(256),
            items: Type.Array(
              Type.Object(
                {
                  productId: identifier,
                  creditsPerPeriod: Type.Unsafe<string>({ ...credits, description: 'Greater than 0.' }),
                  period: periodSchema,
                  lowBalanceThreshold: Type.Optional(nullableCredits),
                },
                { additionalProperties: false },
              ),
              { minItems: 1, maxItems: MAX_PLAN_ITEMS },
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: planSchema, ...errorResponses },
      },
    },
    async (request, reply) => reply.code(201).send(planView(await subscriptions.createPlan(request.body, actingKeyOf(request)))),
  );

  app.get(
    '/plans',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listPlans',
        summary: 'List plans',
        description: 'In id order, a page at a time.',
        querystring: pageQuery(),
        response: { 200: pageSchema(planSchema), ...errorResponses },
      },
    },
    async (request) => fetchPage(request.query, (range) => subscriptions.listPlans(range), (plan) => plan.id, planView),
  );

  app.post(
    '/plans/:planId/retire',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        operationId: 'retirePlan',
        summary: 'Retire a plan',
        description:
          "Ends the plan's offer: a new subscription to it is 409 `plan_retired`, while its existing subscriptions keep granting as before. Final, and retiring again changes nothing (not `retiredBy` either); a renewed offer is a new plan.",
        params: params({ planId: identifier }),
        response: { 200: planSchema, ...errorResponses },
      },
    },
    async (request) => planView(await subscriptions.retirePlan(request.params.planId, actingKeyOf(request))),
  );

  app.get(
    '/plans/:planId',
    {
      config: { scope: 'read' },
      schema: { tags, operationId: 'getPlan', summary: 'Get a plan', params: params({ planId: identifier }), response: { 200: planSchema, ...errorResponses } },
    },
    async (request) => planView(await subscriptions.getPlan(request.params.planId)),
  );
};
