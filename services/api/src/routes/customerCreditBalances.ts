import { parseNonNegativeCredits } from '@tally/domain';
import type { FastifyInstance } from 'fastify';
import { BALANCE_REF, consistentQuerystring, credits, customerId, errorResponses, identifier, nullableCredits } from '../apiSchemas';
import { balanceViewAfterCommand } from '../balanceViewFromEvents';
import { balanceViewOfSnapshot } from '../balanceView';
import type { RouteDeps } from '../routeDeps';
import { waitForConsistency } from '../waitForConsistency';

interface OpenBalanceBody {
  productId: string;
  name?: string;
  startingBalance: string;
  lowBalanceThreshold?: string | null;
}

const customerParams = {
  type: 'object',
  additionalProperties: false,
  required: ['customerId'],
  properties: { customerId },
} as const;

const tags = ['credit balances'];

/** A customer's balances: one per credit product, opened here and listed from the read model. */
export function customerCreditBalances(app: FastifyInstance, deps: RouteDeps): void {
  const { ledger, balances, eventStore } = deps;

  app.post<{ Params: { customerId: string }; Body: OpenBalanceBody }>(
    '/customers/:customerId/credit-balances',
    {
      schema: {
        tags,
        summary: "Open a customer's balance of a credit product",
        description: 'One balance per customer and product: a second is 409. The starting balance shows in the ledger as a top-up with source `starting`.',
        params: customerParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['productId'],
          properties: {
            productId: identifier,
            name: { type: 'string', minLength: 1, maxLength: 256, description: "Defaults to the product's name." },
            startingBalance: { ...credits, default: '0' },
            lowBalanceThreshold: { ...nullableCredits, description: "Overrides the product's threshold; null for none. Absent: the product's." },
          },
        },
        response: { 201: BALANCE_REF, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { body } = request;
      const result = await ledger.openBalance({
        customerId: request.params.customerId,
        productId: body.productId,
        name: body.name,
        startingBalance: parseNonNegativeCredits(body.startingBalance, 'startingBalance'),
        lowBalanceThreshold:
          body.lowBalanceThreshold === undefined || body.lowBalanceThreshold === null
            ? body.lowBalanceThreshold
            : parseNonNegativeCredits(body.lowBalanceThreshold, 'lowBalanceThreshold'),
      });
      return reply.code(201).send(await balanceViewAfterCommand(eventStore, result.balance.balanceId, result));
    },
  );

  app.get<{ Params: { customerId: string }; Querystring: { consistent?: 'true' | 'false' } }>(
    '/customers/:customerId/credit-balances',
    {
      schema: {
        tags,
        summary: "List a customer's balances",
        description:
          'Served from the read model, which may lag the writes by a moment (a balance opened just now may be missing); `consistent=true` waits until it has caught up.',
        params: customerParams,
        querystring: consistentQuerystring,
        response: {
          200: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: BALANCE_REF } } },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      if (request.query.consistent === 'true') await waitForConsistency({ balances, eventStore, ...deps.consistency });
      // In the read model's order: by balance id.
      return { items: (await balances.getCustomerBalances(request.params.customerId)).map(balanceViewOfSnapshot) };
    },
  );
}
