import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  MAX_BACKDATE_YEARS,
  MAX_START_AHEAD_YEARS,
  subscriptionView,
  type SubscriptionDetails,
  type SubscriptionService,
  type SubscriptionView,
} from '@tally/subscriptions';
import { actingKey, answeredCredits, customerId, errorResponses, identifier, nullableAnsweredCredits, nullableCredits, nullableString, params, readonlyArray, stringEnum } from '../apiSchemas';
import { fetchPage, pageQuery, pageSchema } from '../pagination';
import { actingKeyOf, audienceOf } from '../accessGuard';
import { etagOf, ifMatchHeader, versionOfIfMatch } from '../etag';
import { requestInstant } from '../requestInstant';
import { periodSchema, tags } from './planRoutes';

const overridesSchema = Type.Array(
  Type.Object(
    {
      productId: identifier,
      creditsPerPeriod: Type.Optional(Type.Unsafe<string | null>({ ...nullableCredits, description: 'Greater than 0.' })),
      lowBalanceThreshold: Type.Optional(nullableCredits),
    },
    { additionalProperties: false },
  ),
  {
    maxItems: 100,
    description:
      "Per product of the plan: `creditsPerPeriod` and/or `lowBalanceThreshold` (the warning limit of the customer's balance of the product, set on it as the items' `lowBalanceThreshold` says) for this subscription only; absent or null takes the plan's.",
  },
);

const subscriptionSchema = Type.Object({
  id: Type.String(),
  customerId: Type.String(),
  planId: Type.String(),
  planName: Type.String(),
  startsAt: Type.String({ format: 'date-time' }),
  version: Type.Integer({
    minimum: 1,
    description:
      "1 as created, one more per change of its terms (PATCH) or status (the cancellation that stands); grants leave it alone. Also its ETag; send it back as `If-Match` to change only this version.",
  }),
  status: stringEnum(['active', 'canceled'] as const),
  canceledAt: nullableString({ format: 'date-time' }),
  createdAt: Type.String({ format: 'date-time' }),
  createdBy: actingKey('The API key that created the subscription; null for one from before this was recorded, and to a portal token (key names are the provider\'s).'),
  canceledBy: actingKey(
    'The API key whose cancellation stands (the first); null while active, for one canceled before this was recorded, and to a portal token.',
  ),
  items: readonlyArray(
    Type.Object({
      productId: Type.String(),
      period: periodSchema,
      currentPeriod: Type.Unsafe<{ index: number; start: string; end: string } | null>({
        type: ['object', 'null'],
        description: 'The period in progress (0-based index, start inclusive, end exclusive); null before the start.',
        properties: { index: Type.Integer(), start: Type.String(), end: Type.String() },
      }),
      creditsPerPeriod: answeredCredits('In force for the current period (period 0 before the start).'),
      lowBalanceThreshold: nullableAnsweredCredits(
          "The warning limit in force for the current period (period 0 before the start); null: none. The subscription sets it on the customer's balance of the product when it grants period 0 (a balance it opens starts with it) and each period whose limit differs from the period before's, just before that period's grant; never again for a period granted already. So a limit set on the balance after that (PATCH /v1/credit-balances/{id}) stands until this one changes. Subscriptions sharing a balance (one customer, one product) each set it when theirs changes: the last one set stands.",
      ),
      grantedThrough: Type.Unsafe<number | null>({ type: ['integer', 'null'], description: 'The last period known to be granted.' }),
      reservedThrough: Type.Unsafe<number | null>({
        type: ['integer', 'null'],
        description:
          "The last period a grant has reserved (null: none): at least `grantedThrough`, and ahead of it while that period's grant is being made, or failed and is made again by the scheduler's next run whose clock has reached it (a scheduler whose clock runs ahead may reserve a period that by this clock has not begun). A reserved period keeps the terms it was reserved with: a change of terms applies from the period after it at the earliest, and a cancel's `finalPeriod` is at least it.",
      }),
      finalPeriod: Type.Unsafe<number | null>({ type: ['integer', 'null'], description: 'When canceled: the last period that grants (-1: none).' }),
      finalPeriodEnd: nullableString({
        format: 'date-time',
        description:
          "When canceled: the end of `finalPeriod` (null while active, and when none grants). A subscription replacing this one starts at the latest of its items' `finalPeriodEnd` to grant no period twice; it is later than `currentPeriod.end` when the final period is a later one a grant had reserved.",
      }),
      next: Type.Unsafe<{ index: number; start: string; creditsPerPeriod: string; lowBalanceThreshold: string | null; reserved: boolean } | null>({
        type: ['object', 'null'],
        description:
          "The next period to begin (period 0 before the start) and its terms, overrides applied: what its grant will be, so a PATCH's change from the next period shows here while `creditsPerPeriod` still shows the current period's, unless `reserved`. Null when a canceled subscription grants no more.",
        properties: {
          index: Type.Integer(),
          start: Type.String({ format: 'date-time', description: 'When it begins and is granted.' }),
          creditsPerPeriod: answeredCredits('Its grant.'),
          lowBalanceThreshold: nullableAnsweredCredits('The warning limit in force in it; null: none.'),
          reserved: Type.Boolean({
            description:
              'A grant has reserved it already (it is at most `reservedThrough`): it grants the terms shown here, and a change of terms applies from the period after it. False: a change from the next period applies to this one.',
          }),
        },
        required: ['index', 'start', 'creditsPerPeriod', 'lowBalanceThreshold', 'reserved'],
      }),
    }),
    { description: "Each plan item's standing now." },
  ),
  overrides: readonlyArray(
    Type.Object({
      productId: Type.String(),
      effectiveFromPeriod: Type.Integer(),
      creditsPerPeriod: nullableAnsweredCredits(),
      lowBalanceThreshold: nullableAnsweredCredits(),
      changedBy: actingKey('The API key that set this version (the initial ones: the creator); null for one from before this was recorded, and to a portal token.'),
    }),
    { description: 'Every override version; each applies from `effectiveFromPeriod` until a later version of the same product.' },
  ),
});

const subscriptionParams = params({ subscriptionId: identifier });

/** `If-Match` on a change: the subscription's ETag as read, or `*`. */
const ifMatchHeaders = ifMatchHeader('The ETag of the subscription read (its version, quoted: `"3"`), or `*`.');

const ifVersionOf = (ifMatch: string | undefined) => {
  const version = versionOfIfMatch(ifMatch);
  return version === undefined ? {} : { ifVersion: Number(version) };
};

/** The subscription as answered, with its version as the ETag. */
const withEtag = (details: SubscriptionDetails) => ({ etag: etagOf(details.subscription.version), view: subscriptionView(details) });

/** A subscription as a portal token reads it: the keys that made it are the provider's, not named. */
function withoutKeys(view: SubscriptionView): SubscriptionView {
  return { ...view, createdBy: null, canceledBy: null, overrides: view.overrides.map((version) => ({ ...version, changedBy: null })) };
}

/** Subscriptions: a customer on a plan, granted credits every period by the grant scheduler. */
export const subscriptionRoutes: FastifyPluginAsyncTypebox<{ readonly subscriptions: SubscriptionService }> = async (app, { subscriptions }) => {
  app.post(
    '/subscriptions',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        operationId: 'createSubscription',
        summary: 'Subscribe a customer to a plan',
        description:
          "Opens the customer's balance of each plan product where there is none (else uses it, and sets its warning limit to the terms' when they have one) and grants the periods that have started, so a subscription starting now has every product's first period's credits when this returns, however many products the plan has (`grantedThrough` shows it; if the ledger is unavailable the scheduler grants shortly). Of a backdated one it grants a bounded backlog (`TALLY_SUBSCRIPTION_INLINE_GRANT_PERIODS`, 12) before answering and the scheduler the rest; a start more than " + String(MAX_BACKDATE_YEARS) + ' years back (a start in year 26 meant for 2026 would grant every period since) or more than ' + String(MAX_START_AHEAD_YEARS) + " year ahead is 400 `validation_failed`, and nothing is stored. Answers its version as the ETag. An unknown plan is 404 `plan_not_found`, a retired one 409 `plan_retired`.",
        body: Type.Object(
          {
            id: Type.Optional(
              Type.Unsafe<string>({
                ...identifier,
                description:
                  'The idempotency key: send one. A retry with the same id is 409 `subscription_already_exists` rather than a second subscription. Generated (a UUID) when absent, and then a retry after a lost answer (a timeout, a 503 once the subscription was stored) subscribes the customer again and grants every period twice.',
              }),
            ),
            customerId,
            planId: identifier,
            startsAt: Type.Optional(Type.String({ format: 'date-time', description: 'Start of period 0; default now.' })),
            overrides: Type.Optional(overridesSchema),
          },
          { additionalProperties: false },
        ),
        response: { 201: subscriptionSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { startsAt, ...input } = request.body;
      const start = requestInstant(startsAt, 'startsAt');
      const { etag, view } = withEtag(
        await subscriptions.createSubscription({ ...input, ...(start !== undefined ? { startsAt: start } : {}) }, actingKeyOf(request)),
      );
      return reply.code(201).header('etag', etag).send(view);
    },
  );

  app.get(
    '/subscriptions/:subscriptionId',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getSubscription',
        summary: 'Get a subscription',
        description: 'With its version as the ETag.',
        params: subscriptionParams,
        response: { 200: subscriptionSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { etag, view } = withEtag(await subscriptions.getSubscription(request.params.subscriptionId));
      return reply.header('etag', etag).send(view);
    },
  );

  app.get(
    '/customers/:customerId/subscriptions',
    {
      config: { scope: 'read', portal: 'customer' },
      schema: {
        tags,
        operationId: 'listSubscriptions',
        summary: "List a customer's subscriptions",
        description: "Canceled ones too, in id order, a page at a time. The customer's portal token reads them too, without the keys that made them.",
        params: params({ customerId }),
        querystring: pageQuery(),
        response: { 200: pageSchema(subscriptionSchema), ...errorResponses },
      },
    },
    async (request) =>
      fetchPage(
        request.query,
        (range) => subscriptions.listCustomerSubscriptions(request.params.customerId, range),
        (details) => details.subscription.id,
        audienceOf(request) === 'customer' ? (details) => withoutKeys(subscriptionView(details)) : subscriptionView,
      ),
  );

  app.patch(
    '/subscriptions/:subscriptionId',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        operationId: 'updateSubscription',
        summary: "Change a subscription's overrides from the next period",
        description:
          "`overrides` is the complete list from each item's next period on (a product left out goes back to the plan's terms); the period in progress keeps the terms it started with. A changed warning limit is set on the balance when the next period is granted, not now; one sent again unchanged sets nothing. A canceled subscription is 409 `subscription_canceled`. The next period is the one after the period in progress when the change holds the subscription's lock. Without `If-Match`, concurrent changes are made one after the other, none half-applied, each answering the subscription as it left it (`next` shows the terms it set); as `overrides` is the complete list, the last change's list stands and an earlier one's is replaced. Send `If-Match` (the subscription's ETag, its version quoted) not to overwrite a change you did not see: only that version is changed, else 412 `subscription_changed` and nothing is: read it again and apply your change to that.",
        params: subscriptionParams,
        headers: ifMatchHeaders,
        body: Type.Object({ overrides: overridesSchema }, { additionalProperties: false }),
        response: { 200: subscriptionSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { etag, view } = withEtag(
        await subscriptions.changeOverrides(request.params.subscriptionId, request.body.overrides, actingKeyOf(request), ifVersionOf(request.headers['if-match'])),
      );
      return reply.header('etag', etag).send(view);
    },
  );

  app.post(
    '/subscriptions/:subscriptionId/cancel',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        operationId: 'cancelSubscription',
        summary: 'Cancel a subscription',
        description:
          "The period in progress when the cancel holds the subscription's lock keeps its grant (granted now if it was not yet), as does a later one a grant has already reserved (an item's `reservedThrough`: a scheduler whose clock runs ahead may be granting it, as each grant reserves its period under the same lock before it is made, and one whose grant failed is made again by the scheduler's next run whose clock has reached it); no period after it grants. Each item's `finalPeriodEnd` says when its final period ends. Canceling again changes nothing and answers the subscription. With `If-Match` (its ETag), only that version is canceled: 412 `subscription_changed` when another change came first.",
        params: subscriptionParams,
        headers: ifMatchHeaders,
        response: { 200: subscriptionSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { etag, view } = withEtag(await subscriptions.cancelSubscription(request.params.subscriptionId, actingKeyOf(request), ifVersionOf(request.headers['if-match'])));
      return reply.header('etag', etag).send(view);
    },
  );
};
