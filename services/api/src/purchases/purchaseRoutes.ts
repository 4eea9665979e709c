import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { formatCredits, parseCredits } from '@tally/domain';
import { canonicalAmount, MAX_PURCHASE_QUANTITY, type BundleTerms, type PurchaseService } from '@tally/ledger';
import { answeredCredits, balanceParams, credits, customerId, errorResponses, identifier, idempotencyKeyHeaders, params, price } from '../apiSchemas';
import { actorOption, audienceOf } from '../accessGuard';
import { PortalQuantityLimitError } from '../apiErrors';
import { balanceChangeResponse } from '../balances/balanceRoutes';
import type { BalanceService } from '../balances/balanceService';
import { pageOfList, pageQuery, pageSchema } from '../pagination';
import { idempotencyOf } from '../requestHash';

interface PurchaseRoutesOptions {
  readonly purchases: PurchaseService;
  /** Purchases are writes to a balance: queued behind its other writes, answered with the balance after. */
  readonly balances: BalanceService;
  /** Bundles a portal token may buy in one purchase. */
  readonly portalMaxQuantity: number;
}

const tags = ['purchases'];
const DEFAULT_QUANTITY = 1;

const purchaseOptionSchema = Type.Object({
  balanceId: Type.String(),
  productId: Type.String(),
  productName: Type.String(),
  bundles: Type.Array(
    Type.Object({ id: Type.String(), credits: answeredCredits(), price }),
  ),
});

/**
 * A customer on the portal buys (and auto-recharges with) what the portal offers, nothing the
 * operator kept off it (PurchaseRequest.purchaseOptionsOnly); a key buys any bundle of the product.
 */
export const purchaseOptionsOnly = (request: FastifyRequest): boolean => request.principal?.kind === 'customer';

/** A body's `expected`: one bundle's terms as the caller was shown them, compared by value with the bundle's (PurchaseRequest.expected); `then` says what it does. */
export const expectedTerms = (then: string) =>
  Type.Object(
    { credits, price },
    {
      additionalProperties: false,
      description: `One bundle's \`credits\` and \`price\` as the buyer was shown them, as the purchase options list them: ${then}`,
    },
  );

export function expectedTermsOf(expected: Static<ReturnType<typeof expectedTerms>> | undefined): BundleTerms | undefined {
  return expected === undefined ? undefined : { credits: parseCredits(expected.credits), price: expected.price };
}

/** A portal link, leaked, must not buy without bound: a customer buys at most `limit` bundles at once; keys are not limited. */
export function refuseOverPortalQuantity(request: FastifyRequest, quantity: number, limit: number): void {
  if (request.principal?.kind === 'customer' && quantity > limit) {
    throw new PortalQuantityLimitError(`the portal buys at most ${limit} bundles at once; ${quantity} asked`);
  }
}

/** Bundle purchases: credits bought at the catalog's price, recorded with the price in the ledger. */
export const purchaseRoutes: FastifyPluginAsyncTypebox<PurchaseRoutesOptions> = async (app, { purchases, balances, portalMaxQuantity }) => {
  app.post(
    '/credit-balances/:balanceId/purchases',
    {
      config: { scope: 'write', portal: 'balance' },
      schema: {
        tags,
        operationId: 'purchaseBundle',
        summary: 'Buy a bundle of credits',
        description:
          "Tops the balance up with the bundle's credits × quantity (source `purchase`), recording the bundle, quantity, unit price, exact total price and currency so billing can invoice it from the ledger. A portal token buys at most the configured number of bundles at once (400 `portal_quantity_limit`). A bundle the balance's product does not sell is 404 `bundle_not_found`, as is an unknown balance (`balance_not_found`); to a portal token, so is a bundle not among the purchase options. With `expected`, a bundle whose credits or price are no longer those is 409 `purchase_terms_changed` (the message says the bundle's terms now) and nothing is bought; without it the purchase is priced at the catalog's terms when it arrives. The same Idempotency-Key with the same body returns the first result (header idempotent-replayed: true), even if the price changed or the bundle was removed since; with another body, once the key bought, it is 409 `idempotency_key_reused`, also when the two requests race. A key and body refused for a bundle the product sold once (404 `bundle_not_found`) or for its terms (409 `purchase_terms_changed`) never buy, so that a copy of the request still in flight can never buy after the refusal: sent again, they get the catalog's refusal of the moment (404 or 409 `purchase_terms_changed`) while it still refuses them, and 409 `idempotency_key_reused` once it would sell them again. Another body under the key, or a new key, buys. A bundle id the product never sold, and a refusal by the balance itself, leave the key and body free.",
        params: balanceParams,
        headers: idempotencyKeyHeaders,
        body: Type.Object(
          {
            bundleId: identifier,
            quantity: Type.Optional(
              Type.Integer({ minimum: 1, maximum: MAX_PURCHASE_QUANTITY, default: DEFAULT_QUANTITY, description: 'Bundles bought; default 1.' }),
            ),
            expected: Type.Optional(expectedTerms('bought only while the bundle\'s are the same (amounts compared by value, "9.9" is "9.90").')),
          },
          { additionalProperties: false },
        ),
        response: { 201: balanceChangeResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { balanceId } = request.params;
      const { bundleId, quantity = DEFAULT_QUANTITY } = request.body;
      refuseOverPortalQuantity(request, quantity, portalMaxQuantity);
      const expected = expectedTermsOf(request.body.expected);
      // The request as the client meant it (the default filled in, amounts in one spelling), not
      // the catalog's price: a retry after a price change is still the same purchase and answers
      // what the first one did. Without an expectation it hashes as before expectations existed,
      // so purchases stored then still replay.
      const idempotency = idempotencyOf(
        request.headers['idempotency-key'],
        expected === undefined
          ? { bundleId, quantity }
          : { bundleId, quantity, expected: { credits: formatCredits(expected.credits), price: { amount: canonicalAmount(expected.price.amount), currency: expected.price.currency } } },
      );
      const purchase = { bundleId, quantity, purchaseOptionsOnly: purchaseOptionsOnly(request), ...(expected === undefined ? {} : { expected }) };
      const { replayed, ...body } = await balances.change(balanceId, () => purchases.purchase(balanceId, purchase, { ...idempotency, ...actorOption(request) }), audienceOf(request));
      return reply.code(201).header('idempotent-replayed', String(replayed)).send(body);
    },
  );

  app.get(
    '/customers/:customerId/purchase-options',
    {
      config: { scope: 'read', portal: 'customer' },
      schema: {
        tags,
        operationId: 'listPurchaseOptions',
        summary: 'What a customer can buy',
        description:
          "For each of the customer's balances, the bundles its product offers as purchase options (`purchaseOption: true`), with prices (an empty list when it offers none). A portal token of the customer reaches it.",
        params: params({ customerId }),
        querystring: pageQuery(),
        response: { 200: pageSchema(purchaseOptionSchema), ...errorResponses },
      },
    },
    async (request) => {
      const options = await purchases.purchaseOptions(request.params.customerId);
      const items = options.map((option) => ({
        ...option,
        bundles: option.bundles.map((bundle) => ({ id: bundle.id, credits: formatCredits(bundle.credits), price: { ...bundle.price } })),
      }));
      return pageOfList(items, request.query, (option) => option.balanceId);
    },
  );
};
