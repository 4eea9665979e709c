import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { formatCredits, parseNonNegativeCredits, parsePositiveCredits } from '@tally/domain';
import { actorOption } from '../accessGuard';
import {
  balanceParams,
  consistent,
  credits,
  customerId,
  errorResponses,
  identifier,
  idempotencyKeyHeaders,
  nullableCredits,
  params,
  reason,
  refTo,
  text,
  UUID_PATTERN,
} from '../apiSchemas';
import { etagOf, ifMatchHeader, versionOfIfMatch } from '../etag';
import { LedgerEntrySchema } from '../ledger/ledgerEntryView';
import { pageOfList, pageQuery, pageSchema } from '../pagination';
import { idempotencyOf, requestHash } from '../requestHash';
import type { BalanceService } from './balanceService';
import { CreditBalanceSchema } from './balanceView';

const tags = ['credit balances'];
const STARTING_BALANCE = '0';
const customerParams = params({ customerId });
export const BALANCE = refTo(CreditBalanceSchema);
/** What a top-up, deduction or purchase answers: the event it recorded and the balance after it. */
export const balanceChangeResponse = Type.Object({ entry: refTo(LedgerEntrySchema), balance: BALANCE });

const changeSchema = (operationId: string, summary: string, description: string) => ({
  tags,
  operationId,
  summary,
  description: `${description} The same Idempotency-Key with the same body returns the first result (header idempotent-replayed: true) and changes nothing; with another body it is 409.`,
  params: balanceParams,
  headers: idempotencyKeyHeaders,
  body: Type.Object({ credits: Type.Unsafe<string>({ ...credits, description: 'Greater than 0.' }), reason: Type.Optional(reason) }, { additionalProperties: false }),
  response: { 201: balanceChangeResponse, ...errorResponses },
});

/** Credit balances: opened per customer and product, read from the read model, changed through the ledger. */
export const balanceRoutes: FastifyPluginAsyncTypebox<{ readonly balances: BalanceService }> = async (app, { balances }) => {
  app.post(
    '/customers/:customerId/credit-balances',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        operationId: 'openCreditBalance',
        summary: "Open a customer's balance of a credit product",
        description:
          "One balance per customer and product: a second is 409 `balance_already_exists`, whose message names the balance that exists (and whose Location header is its URL), so a client whose answer was lost learns what it opened. The starting balance shows in the ledger as a top-up with source `starting`. Answered with the balance's ETag and its URL as Location.",
        params: customerParams,
        body: Type.Object(
          {
            productId: identifier,
            name: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "Defaults to the product's name." })),
            startingBalance: Type.Optional(Type.Unsafe<string>({ ...credits, default: STARTING_BALANCE })),
            lowBalanceThreshold: Type.Optional(
              Type.Unsafe<string | null>({ ...nullableCredits, description: "Overrides the product's threshold; null for none. Absent: the product's." }),
            ),
            overdraftLimit: Type.Optional(Type.Unsafe<string>({ ...credits, description: 'How far below zero holds may take available. Default 0.' })),
          },
          { additionalProperties: false },
        ),
        response: { 201: BALANCE, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { productId, name, startingBalance = STARTING_BALANCE, lowBalanceThreshold, overdraftLimit } = request.body;
      const opened = await balances.open({
        customerId: request.params.customerId,
        productId,
        name,
        startingBalance: parseNonNegativeCredits(startingBalance, 'startingBalance'),
        lowBalanceThreshold:
          lowBalanceThreshold === undefined || lowBalanceThreshold === null
            ? lowBalanceThreshold
            : parseNonNegativeCredits(lowBalanceThreshold, 'lowBalanceThreshold'),
        ...(overdraftLimit !== undefined ? { overdraftLimit: parseNonNegativeCredits(overdraftLimit, 'overdraftLimit') } : {}),
        ...actorOption(request),
      });
      return reply.code(201).header('etag', etagOf(opened.revision)).header('location', `/v1/credit-balances/${encodeURIComponent(opened.id)}`).send(opened);
    },
  );

  app.get(
    '/customers/:customerId/credit-balances',
    {
      config: { scope: 'read', portal: 'customer' },
      schema: {
        tags,
        operationId: 'listCreditBalances',
        summary: "List a customer's balances",
        description:
          'Served from the read model, which may lag the writes by a moment; `consistent=true` waits until it has caught up. A balance the read model does not hold yet (opened a moment ago, or while the read model is rebuilt) is folded from the event store, so the list has every balance of the customer; only while PostgreSQL is unreachable is it the read model\'s alone. 503 `balance_loading` (with Retry-After) when such a balance has a long history still being loaded: retry, the load goes on.',
        params: customerParams,
        querystring: pageQuery({ consistent: Type.Optional(consistent) }),
        response: { 200: pageSchema(BALANCE), ...errorResponses },
      },
    },
    async (request) => {
      const views = await balances.listOfCustomer(request.params.customerId, { consistent: request.query.consistent === 'true' });
      // By balance id, the read model's order.
      return pageOfList(views, request.query, (view) => view.id);
    },
  );

  app.get(
    '/credit-balances/:balanceId',
    {
      config: { scope: 'read', portal: 'balance' },
      schema: {
        tags,
        operationId: 'getCreditBalance',
        summary: 'Get a balance',
        description:
          "With its revision as the ETag (send it back as `If-Match` to change its settings). Served from the read model, which may lag the writes by a moment; `consistent=true` waits until it has caught up with every write made before the request. A balance the read model does not hold yet (opened a moment ago, or while the read model is rebuilt) is folded from the event store; 503 `balance_loading` (with Retry-After) when its long history is still being loaded: retry, the load goes on.",
        params: balanceParams,
        querystring: Type.Object({ consistent: Type.Optional(consistent) }, { additionalProperties: false }),
        response: { 200: BALANCE, ...errorResponses },
      },
    },
    async (request, reply) => {
      const balance = await balances.get(request.params.balanceId, { consistent: request.query.consistent === 'true' });
      return reply.header('etag', etagOf(balance.revision)).send(balance);
    },
  );

  app.patch(
    '/credit-balances/:balanceId',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        operationId: 'updateCreditBalance',
        summary: 'Rename a balance, change its low-balance threshold or its overdraft limit',
        description:
          "Fields given replace the stored ones; fields left out stay as they are. With `If-Match` (the balance's ETag, its revision quoted), only that version is changed: 412 `balance_changed`, nothing changed, when anything changed the balance since (a settings change, a top-up, usage), checked atomically with the write. Without `If-Match` the change is made on the balance as it is, as concurrent changes are made one after the other: send only the fields you mean to change. Answered with the balance after it and its ETag. A lowered overdraft limit never cancels holds already granted; it bounds the next ones.",
        params: balanceParams,
        headers: ifMatchHeader('The ETag of the balance read (its revision, quoted: `"3"`), or `*`.'),
        body: Type.Object(
          {
            name: Type.Optional(text(256)),
            lowBalanceThreshold: Type.Optional(Type.Unsafe<string | null>({ ...nullableCredits, description: 'null removes the threshold.' })),
            overdraftLimit: Type.Optional(Type.Unsafe<string>({ ...credits, description: 'How far below zero holds may take available.' })),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: BALANCE, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { name, lowBalanceThreshold, overdraftLimit } = request.body;
      const ifRevision = versionOfIfMatch(request.headers['if-match']);
      const balance = await balances.changeSettings(
        request.params.balanceId,
        {
          ...(name !== undefined ? { name } : {}),
          ...(overdraftLimit !== undefined ? { overdraftLimit: parseNonNegativeCredits(overdraftLimit, 'overdraftLimit') } : {}),
          ...(lowBalanceThreshold !== undefined
            ? { lowBalanceThreshold: lowBalanceThreshold === null ? null : parseNonNegativeCredits(lowBalanceThreshold, 'lowBalanceThreshold') }
            : {}),
        },
        { ...actorOption(request), ...(ifRevision !== undefined ? { ifRevision: BigInt(ifRevision) } : {}) },
      );
      return reply.header('etag', etagOf(balance.revision)).send(balance);
    },
  );

  for (const [path, change, schema] of [
    ['top-ups', balances.topUp, changeSchema('topUpCreditBalance', 'Top up a balance', 'Adds credits (source `manual`).')],
    [
      'deductions',
      balances.deduct,
      changeSchema('deductCredits', 'Deduct credits by hand', 'Takes credits (source `manual`), e.g. to retain usage recorded elsewhere; the balance may go below zero.'),
    ],
  ] as const) {
    app.post(`/credit-balances/:balanceId/${path}`, { config: { scope: 'write' }, schema }, async (request, reply) => {
      const amount = parsePositiveCredits(request.body.credits);
      const input = { credits: amount, reason: request.body.reason ?? null };
      // Hashed in normalised form: "10" and "10.0" are the same request.
      const idempotency = idempotencyOf(request.headers['idempotency-key'], { credits: formatCredits(amount), reason: input.reason });
      const { replayed, ...body } = await change(request.params.balanceId, input, { ...idempotency, ...actorOption(request) });
      return reply.code(201).header('idempotent-replayed', String(replayed)).send(body);
    });
  }

  app.post(
    '/credit-balances/:balanceId/refunds',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        operationId: 'refundCharge',
        summary: 'Refund a charge',
        description:
          'Gives back credits a charge took: `credits` of them (at most what it took), or all of them. The refund is a top-up with source `refund` naming the charge (`refund.entryId`). One refund per charge: sending the same request again returns the first refund (header idempotent-replayed: true) and changes nothing, with no Idempotency-Key needed; another request for the same charge is 409 `already_refunded`. 404 `ledger_entry_not_found` for an id not in this balance\'s ledger, 409 `entry_not_refundable` for an entry that is not a CreditConsumed.',
        params: balanceParams,
        body: Type.Object(
          {
            entryId: Type.String({ format: 'uuid', pattern: UUID_PATTERN, description: "The charge's ledger entry id: a CreditConsumed of this balance." }),
            credits: Type.Optional(Type.Unsafe<string>({ ...credits, description: 'Greater than 0, at most what the charge took. Absent: all of it.' })),
            reason: Type.Optional(reason),
          },
          { additionalProperties: false },
        ),
        response: { 201: balanceChangeResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      // Event ids are stored in lower case; an id in capitals names the same entry.
      const entryId = request.body.entryId.toLowerCase();
      const amount = request.body.credits === undefined ? undefined : parsePositiveCredits(request.body.credits);
      const reasonText = request.body.reason ?? null;
      // Hashed in normalised form, as the other writes: a retry that spells the amount differently is the same request,
      // and with the amount it comes to (absent: all the charge took, which the ledger reads), so naming all of it is too.
      const hash = (refunded: bigint) => requestHash({ entryId, credits: formatCredits(refunded), reason: reasonText });
      const { replayed, ...body } = await balances.refund(
        request.params.balanceId,
        { entryId, ...(amount !== undefined ? { credits: amount } : {}), reason: reasonText },
        { requestHash: hash, ...actorOption(request) },
      );
      return reply.code(201).header('idempotent-replayed', String(replayed)).send(body);
    },
  );
};
