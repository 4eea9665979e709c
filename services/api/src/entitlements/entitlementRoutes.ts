import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { parseNonNegativeCredits } from '@tally/domain';
import { answeredCredits, consistent, credits, customerId, errorResponses, identifier, params } from '../apiSchemas';
import type { EntitlementService } from './entitlementService';

interface EntitlementRoutesOptions {
  readonly entitlements: EntitlementService;
}

const EntitlementSchema = Type.Object({
  allowed: Type.Boolean({ description: 'Whether available − credits stays at or above −overdraftLimit: what a hold of `credits` would be granted on.' }),
  available: answeredCredits('balance − held; may be negative (usage is charged in full, whatever the overdraft limit).'),
  balance: answeredCredits('Settled credits.'),
  held: answeredCredits(),
  overdraftLimit: answeredCredits(),
  position: Type.String({ description: 'The read model reflects every event up to this global position.' }),
  // A type array, not anyOf: fast-json-stringify serialises it directly instead of validating each reply to pick a branch.
  lagMs: Type.Unsafe<number | null>({
    type: ['integer', 'null'],
    description: "How long ago the read model last held every event (up to the projector's poll interval when current); null before a projector has said.",
  }),
});

/** Entitlement checks: may a customer spend N credits of a product now, from the read model in one round trip. */
export const entitlementRoutes: FastifyPluginAsyncTypebox<EntitlementRoutesOptions> = async (app, { entitlements }) => {
  app.get(
    '/customers/:customerId/entitlements/:productId',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['holds'],
        operationId: 'checkEntitlement',
        summary: 'May the customer spend credits of a product now?',
        description:
          "Answered from the read model in one Redis round trip, so it may lag the writes by `lagMs`; `consistent=true` first waits (bounded, as balance lookups do) until it has every write made before the request. It sets nothing aside: to be sure the credits are there when the job runs, place a hold. A balance the read model does not hold yet (opened a moment ago, or while the read model is rebuilt) is folded from the event store, with `lagMs` 0. 404 `balance_not_found` when the customer has no balance of the product; 503 (with Retry-After) when that cannot be told yet: the balance registry unreachable, or a long history still being loaded (`balance_loading`).",
        params: params({ customerId, productId: identifier }),
        querystring: Type.Object(
          {
            credits: Type.Optional(Type.Unsafe<string>({ ...credits, description: 'The credits to be spent; default 0 (is anything available?).' })),
            consistent: Type.Optional(consistent),
          },
          { additionalProperties: false },
        ),
        response: { 200: EntitlementSchema, ...errorResponses },
      },
    },
    async (request) => {
      const { customerId: customer, productId } = request.params;
      const amount = parseNonNegativeCredits(request.query.credits ?? '0', 'credits');
      return entitlements.check(customer, productId, amount, { consistent: request.query.consistent === 'true' });
    },
  );
};
