import type { BalanceRef } from '@tally/catalog';
import { parseNonNegativeCredits } from '@tally/domain';
import type { FastifyInstance } from 'fastify';
import { BALANCE_REF, consistentQuerystring, credits, customerId, errorResponses, identifier, nullableCredits } from '../apiSchemas';
import { balanceViewAfterCommand, balanceViewFromEvents } from '../balanceViewFromEvents';
import { balanceViewOfSnapshot } from '../balanceView';
import { pageOfList, pageQuerystring, pageSchema, type PageQuery } from '../pagination';
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

/** A customer's balances: one per credit product, opened here and listed from the read model (the event store for those it lacks). */
export function customerCreditBalances(app: FastifyInstance, deps: RouteDeps): void {
  const { ledger, balances, eventStore } = deps;

  app.post<{ Params: { customerId: string }; Body: OpenBalanceBody }>(
    '/customers/:customerId/credit-balances',
    {
      config: { scope: 'write' },
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

  app.get<{ Params: { customerId: string }; Querystring: PageQuery & { consistent?: 'true' | 'false' } }>(
    '/customers/:customerId/credit-balances',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: "List a customer's balances",
        description:
          'Served from the read model, which may lag the writes by a moment; `consistent=true` waits until it has caught up. A balance the read model does not hold yet (opened a moment ago, or while the read model is rebuilt) is folded from the event store, so the list has every balance of the customer; only while PostgreSQL is unreachable is it the read model\'s alone.',
        params: customerParams,
        querystring: { ...consistentQuerystring, properties: { ...consistentQuerystring.properties, ...pageQuerystring } },
        response: { 200: pageSchema(BALANCE_REF), ...errorResponses },
      },
    },
    async (request) => {
      if (request.query.consistent === 'true') await waitForConsistency({ balances, eventStore, ...deps.consistency });
      const { customerId: customer } = request.params;
      const [snapshots, registered] = await Promise.all([
        balances.getCustomerBalances(customer),
        // Without PostgreSQL the list is still served, from the read model alone, as it was
        // before the fallback existed: a read should not fail for want of a completeness check.
        deps.catalog.balancesOfCustomers([customer]).catch((error: unknown) => {
          request.log.warn({ err: error, customerId: customer }, 'balance registry unreadable; listing the read model alone');
          return new Map<string, readonly BalanceRef[]>();
        }),
      ]);
      const views = new Map(snapshots.map((snapshot) => [snapshot.balanceId, balanceViewOfSnapshot(snapshot)]));
      // The balance registry knows every balance opened; the event store has the truth of those
      // the read model has not projected yet, as the single-balance GET does.
      for (const { id } of registered.get(customer) ?? []) {
        if (views.has(id)) continue;
        const folded = await balanceViewFromEvents(eventStore, id);
        if (folded !== undefined) views.set(id, folded);
      }
      // By balance id, the read model's order.
      return pageOfList([...views.values()], request.query, (view) => view.id);
    },
  );
}
