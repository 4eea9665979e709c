import { Type, type Static } from '@sinclair/typebox';
import { formatCredits } from '@tally/domain';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { MAX_MONTHLY_LIMIT, MAX_PURCHASE_QUANTITY, type AutoRechargeStatus, type AutoRecharges } from '@tally/ledger';
import type { BalanceService } from '../balances/balanceService';
import { audienceOf, keyOf } from '../accessGuard';
import { actingKey, answeredCredits, balanceParams, errorResponses, identifier, nullableString, price } from '../apiSchemas';
import type { LedgerAudience } from '../ledger/ledgerEntryView';
import { expectedTerms, expectedTermsOf, purchaseOptionsOnly, refuseOverPortalQuantity } from './purchaseRoutes';

const tags = ['purchases'];

const AutoRechargeSchema = Type.Object({
  balanceId: Type.String(),
  bundleId: Type.String({ description: "The bundle of the balance's product it buys." }),
  quantity: Type.Integer({ minimum: 1, description: 'Bundles it buys each time.' }),
  since: Type.String({ description: 'The event store position it was set at: only low-balance warnings after it recharge.' }),
  updatedAt: Type.String({ format: 'date-time' }),
  updatedBy: actingKey('The API key (or console session) that set it; null when the customer set it on the portal, and always null to a portal token.'),
  lastRechargedAt: nullableString({ format: 'date-time', description: 'When it last bought; null if it has not yet.' }),
  lastRefusal: Type.Union(
    [Type.Object({ at: Type.String({ format: 'date-time' }), reason: Type.String({ description: 'Why the purchase was refused, e.g. the bundle is no longer sold.' }) }), Type.Null()],
    { description: 'Its last purchase refused (the warning is left), until it buys again or is set anew; null otherwise.' },
  ),
  monthlyLimit: Type.Union([Type.Integer({ minimum: 1, maximum: MAX_MONTHLY_LIMIT }), Type.Null()], {
    description: 'At most this many purchases for the low-balance warnings of one calendar month (UTC); null: no limit.',
  }),
  rechargesThisMonth: Type.Integer({ minimum: 0, description: 'The purchases it made for warnings of the current calendar month (UTC).' }),
  terms: Type.Union([Type.Object({ credits: answeredCredits(), price }), Type.Null()], {
    description:
      "The bundle's credits and price when it was set, as the purchase options list them: it buys only while the bundle's are these (amounts compared by value); a warning met with other terms buys nothing and is kept as `lastRefusal`, and setting it again (PUT) accepts the new ones. Null for a setting made before terms were kept: it buys at the catalog's terms of the moment.",
  }),
  belowWarningLimit: Type.Boolean({
    description:
      "The balance is below its warning limit: its warning has fired. On PUT as its ledger is as it answers; on GET as GET /v1/credit-balances/{id} serves it (its belowThreshold, which may trail the ledger by the projection's lag). A new setting buys nothing for a warning before it: it buys at the next one, once the balance is back at its limit and falls below it again, so top it up now if it needs credits.",
  }),
});

/** A balance's auto-recharge as GET /v1/credit-balances/{balanceId}/auto-recharge answers it. */
export type AutoRechargeView = Static<typeof AutoRechargeSchema>;

/** The key that set it is the provider's to know: the portal reads null, as it does for ledger entries and subscriptions. */
const view = (recharge: AutoRechargeStatus, audience: LedgerAudience): AutoRechargeView => ({
  balanceId: recharge.balanceId,
  bundleId: recharge.bundleId,
  quantity: recharge.quantity,
  since: recharge.sincePosition.toString(),
  updatedAt: recharge.updatedAt.toISOString(),
  updatedBy: audience === 'customer' ? null : recharge.updatedBy,
  lastRechargedAt: recharge.lastRechargedAt?.toISOString() ?? null,
  lastRefusal: recharge.lastRefusal === null ? null : { at: recharge.lastRefusal.at.toISOString(), reason: recharge.lastRefusal.reason },
  monthlyLimit: recharge.monthlyLimit,
  rechargesThisMonth: recharge.rechargesThisMonth,
  belowWarningLimit: recharge.belowWarningLimit,
  terms: recharge.terms === null ? null : { credits: formatCredits(recharge.terms.credits), price: recharge.terms.price },
});

/**
 * A balance's auto-recharge: when its low-balance warning fires, the scheduler role buys its
 * product's bundle (a purchase like any other in the ledger, once per warning).
 */
export const autoRechargeRoutes: FastifyPluginAsyncTypebox<{
  readonly autoRecharges: AutoRecharges;
  /** The GET's belowWarningLimit is the balance's belowThreshold as GET /credit-balances/{id} serves it. */
  readonly balances: Pick<BalanceService, 'get' | 'loadSignal'>;
  readonly portalMaxQuantity: number;
}> = async (app, { autoRecharges, balances, portalMaxQuantity }) => {
  app.get(
    '/credit-balances/:balanceId/auto-recharge',
    {
      config: { scope: 'read', portal: 'balance' },
      schema: {
        tags,
        operationId: 'getAutoRecharge',
        summary: "A balance's auto-recharge",
        description: '404 `auto_recharge_not_set` when it has none.',
        params: balanceParams,
        response: { 200: AutoRechargeSchema, ...errorResponses },
      },
    },
    async (request) => {
      const { balanceId } = request.params;
      // The setting first: a balance without one is 404 auto_recharge_not_set, whatever its balance.
      const recharge = await autoRecharges.get(balanceId);
      // Through the balance read (the read model, or a fold within the load budget for a balance
      // it lacks), not a load of the balance from the event store per request; the same
      // belowThreshold (isBelowThreshold) a read of the balance answers, as of the same moment.
      const { belowThreshold } = await balances.get(balanceId, { consistent: false });
      return view({ ...recharge, belowWarningLimit: belowThreshold }, audienceOf(request));
    },
  );

  app.put(
    '/credit-balances/:balanceId/auto-recharge',
    {
      config: { scope: 'write', portal: 'balance' },
      schema: {
        tags,
        operationId: 'setAutoRecharge',
        summary: 'Buy a bundle whenever the balance falls below its warning limit',
        description:
          "Sets (or replaces) the balance's auto-recharge: each time its low-balance warning fires (once per crossing of the warning limit), the scheduler role buys `quantity` of the bundle `bundleId` at the terms (credits and price) it was set at (`terms`), refusing a bundle whose terms changed since (kept as `lastRefusal`; set it again to accept the new ones), recorded as a purchase (reason `auto-recharge: below the warning limit`) that billing invoices as any other; once per warning, however often it is handled. Only warnings after the first setting act (a replacement keeps acting on a warning stored before it and not yet handled; turned off and on again, it starts anew), and none whose balance is back at the limit by then (a top-up since): set on a balance already below its limit (`belowWarningLimit`), it buys at the next warning, after the balance is back at the limit. A bundle the balance's product does not sell is 404 `bundle_not_found`; a balance without a warning limit is 409 `warning_limit_not_set`, since nothing would make it buy. 503 `balance_loading` (with Retry-After) when the balance's long history is still being loaded: nothing was set; retry, the load goes on. A bundle removed from the catalog later is refused at the warning, logged, and buys nothing. `monthlyLimit` caps the purchases for the warnings of one calendar month (UTC, by when each warning was stored): a warning past it buys nothing and is kept as `lastRefusal`; purchases of the month made before a new setting still count. A portal token of the balance's customer sets it too, to a bundle the portal offers (a purchase option) alone, which it keeps to when it buys (a bundle taken off the purchase options later is refused at the warning, kept as `lastRefusal`) and a quantity within the portal's limit (400 `portal_quantity_limit`), as it buys.",
        params: balanceParams,
        body: Type.Object(
          {
            bundleId: identifier,
            quantity: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PURCHASE_QUANTITY, default: 1, description: 'Bundles bought each time; default 1.' })),
            monthlyLimit: Type.Optional(
              Type.Union([Type.Integer({ minimum: 1, maximum: MAX_MONTHLY_LIMIT }), Type.Null()], {
                description: `At most this many purchases a calendar month (UTC), 1 to ${MAX_MONTHLY_LIMIT}; null or absent: no limit.`,
              }),
            ),
            expected: Type.Optional(expectedTerms(
                'set only while the bundle\'s are the same (amounts compared by value, "9.9" is "9.90"; otherwise 409 `purchase_terms_changed` and nothing is set), and kept as its `terms`. Without it, the terms kept are the catalog\'s when the request arrives.',
              ),),
          },
          { additionalProperties: false },
        ),
        response: { 200: AutoRechargeSchema, ...errorResponses },
      },
    },
    async (request) => {
      const startedAt = performance.now();
      const { bundleId, quantity = 1, monthlyLimit = null } = request.body;
      const expected = expectedTermsOf(request.body.expected);
      const { balanceId } = request.params;
      // Each warning buys this many: the portal's limit on one purchase holds for them too.
      refuseOverPortalQuantity(request, quantity, portalMaxQuantity);
      // Its balance is loaded within the load budget, as a read's: a long history answers 503
      // balance_loading, the fold going on for the retry, rather than holding the request.
      const options = { signal: balances.loadSignal(startedAt) };
      const setting = { bundleId, quantity, monthlyLimit, purchaseOptionsOnly: purchaseOptionsOnly(request), ...(expected !== undefined ? { expected } : {}) };
      return view(await autoRecharges.set(balanceId, setting, keyOf(request), options), audienceOf(request));
    },
  );

  app.delete(
    '/credit-balances/:balanceId/auto-recharge',
    {
      config: { scope: 'write', portal: 'balance' },
      schema: {
        tags,
        operationId: 'removeAutoRecharge',
        summary: "Turn a balance's auto-recharge off",
        description: 'From the next warning on. 404 `auto_recharge_not_set` when it has none.',
        params: balanceParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await autoRecharges.remove(request.params.balanceId);
      return reply.code(204).send(null);
    },
  );
};
