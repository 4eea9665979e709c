import { formatCredits } from '@tally/domain';
import { MAX_PURCHASE_QUANTITY, type PurchaseService } from '@tally/subscriptions';
import type { FastifyInstance } from 'fastify';
import {
  BALANCE_REF,
  balanceParams,
  customerId,
  errorResponses,
  identifier,
  idempotencyKeyHeaders,
  LEDGER_ENTRY_REF,
} from '../apiSchemas';
import { balanceViewAfterCommand } from '../balanceViewFromEvents';
import { ledgerEntryView } from '../ledgerEntryView';
import { requestHash } from '../requestHash';
import { pageOfList, pageQuerystring, pageSchema, type PageQuery } from '../pagination';
import type { RouteDeps } from '../routeDeps';

export interface PurchaseRouteDeps extends Pick<RouteDeps, 'eventStore' | 'balanceWrites'> {
  readonly purchases: PurchaseService;
}

interface PurchaseRoute {
  Params: { balanceId: string };
  Body: { bundleId: string; quantity: number };
  Headers: { 'idempotency-key'?: string };
}

const tags = ['purchases'];

const priceSchema = {
  type: 'object',
  required: ['amount', 'currency'],
  properties: { amount: { type: 'string' }, currency: { type: 'string' } },
} as const;

const purchaseOptionSchema = {
  type: 'object',
  required: ['balanceId', 'productId', 'productName', 'bundles'],
  properties: {
    balanceId: { type: 'string' },
    productId: { type: 'string' },
    productName: { type: 'string' },
    bundles: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'credits', 'price'],
        properties: { id: { type: 'string' }, credits: { type: 'string' }, price: priceSchema },
      },
    },
  },
} as const;

/** Bundle purchases: credits bought at the catalog's price, recorded with the price in the ledger. */
export function purchases(app: FastifyInstance, deps: PurchaseRouteDeps): void {
  app.post<PurchaseRoute>(
    '/credit-balances/:balanceId/purchases',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        summary: 'Buy a bundle of credits',
        description:
          "Tops the balance up with the bundle's credits × quantity (source `purchase`), recording the bundle, quantity, unit price, exact total price and currency so billing can invoice it from the ledger. A bundle the balance's product does not sell is 404 `bundle_not_found`, as is an unknown balance (`balance_not_found`). The same Idempotency-Key with the same body returns the first result (header idempotent-replayed: true), even if the price changed since; with another body it is 409.",
        params: balanceParams,
        headers: idempotencyKeyHeaders,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['bundleId'],
          properties: {
            bundleId: identifier,
            quantity: { type: 'integer', minimum: 1, maximum: MAX_PURCHASE_QUANTITY, default: 1, description: 'Bundles bought; default 1.' },
          },
        },
        response: {
          201: { type: 'object', required: ['entry', 'balance'], properties: { entry: LEDGER_ENTRY_REF, balance: BALANCE_REF } },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { balanceId } = request.params;
      const { bundleId, quantity } = request.body;
      const idempotencyKey = request.headers['idempotency-key'];
      // The request as the client meant it (the default filled in), not the price: a retry after
      // a price change is still the same purchase and answers what the first one did.
      const options = idempotencyKey === undefined ? undefined : { idempotencyKey, requestHash: requestHash({ bundleId, quantity }) };
      const result = await deps.balanceWrites.run(balanceId, () => deps.purchases.purchase(balanceId, { bundleId, quantity }, options));
      const entry = result.events[0];
      // A purchase always tops up a positive amount, which records one event first.
      if (entry === undefined) throw new Error(`a purchase of bundle ${bundleId} on balance ${balanceId} recorded no event`);
      const body = { entry: ledgerEntryView(entry), balance: await balanceViewAfterCommand(deps.eventStore, balanceId, result) };
      return reply.code(201).header('idempotent-replayed', String(result.replayed)).send(body);
    },
  );

  app.get<{ Params: { customerId: string }; Querystring: PageQuery }>(
    '/customers/:customerId/purchase-options',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'What a customer can buy',
        description: "For each of the customer's balances, its product's bundles with prices (an empty list when the product sells none).",
        params: { type: 'object', additionalProperties: false, required: ['customerId'], properties: { customerId } },
        querystring: { type: 'object', additionalProperties: false, properties: pageQuerystring },
        response: { 200: pageSchema(purchaseOptionSchema), ...errorResponses },
      },
    },
    async (request) => {
      const options = await deps.purchases.purchaseOptions(request.params.customerId);
      const items = options.map((option) => ({
        ...option,
        bundles: option.bundles.map((bundle) => ({ id: bundle.id, credits: formatCredits(bundle.credits), price: { ...bundle.price } })),
      }));
      return pageOfList(items, request.query, (option) => option.balanceId);
    },
  );
}
