import { BalanceNotFoundError } from '@tally/catalog';
import { formatCredits, parsePositiveCredits } from '@tally/domain';
import type { LedgerService } from '@tally/ledger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  BALANCE_REF,
  balanceParams,
  credits,
  CURSOR_PATTERN,
  errorResponses,
  idempotencyKeyHeaders,
  LEDGER_ENTRY_REF,
  LIMIT_PATTERN,
  reason,
} from '../apiSchemas';
import { balanceViewAfterCommand } from '../balanceViewFromEvents';
import { ledgerEntryView } from '../ledgerEntryView';
import { requestHash } from '../requestHash';
import type { RouteDeps } from '../routeDeps';

interface BalanceParams {
  balanceId: string;
}

interface ChangeBody {
  credits: string;
  reason?: string | null;
}

interface IdempotencyHeaders {
  'idempotency-key'?: string;
}

interface ChangeRoute {
  Params: BalanceParams;
  Body: ChangeBody;
  Headers: IdempotencyHeaders;
}

export const DEFAULT_LEDGER_PAGE = 50;

const tags = ['credit balances'];

const changeSchema = (summary: string, description: string) => ({
  tags,
  summary,
  description: `${description} The same Idempotency-Key with the same body returns the first result (header idempotent-replayed: true) and changes nothing; with another body it is 409.`,
  params: balanceParams,
  headers: idempotencyKeyHeaders,
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['credits'],
    properties: { credits: { ...credits, description: 'Greater than 0.' }, reason },
  },
  response: {
    201: {
      type: 'object',
      required: ['entry', 'balance'],
      properties: { entry: LEDGER_ENTRY_REF, balance: BALANCE_REF },
    },
    ...errorResponses,
  },
});

/** Manual top-ups and deductions, and the ledger that records them with every other change. */
export function creditBalanceLedger(app: FastifyInstance, deps: RouteDeps): void {
  const { ledger, catalog, eventStore, balanceWrites } = deps;

  function changeHandler(change: LedgerService['topUp'] | LedgerService['deduct']) {
    return async (request: FastifyRequest<ChangeRoute>, reply: FastifyReply) => {
      const { balanceId } = request.params;
      const amount = parsePositiveCredits(request.body.credits);
      const input = { credits: amount, reason: request.body.reason ?? null };
      const idempotencyKey = request.headers['idempotency-key'];
      // Hashed in normalised form: "10" and "10.0" are the same request.
      const options =
        idempotencyKey === undefined
          ? undefined
          : { idempotencyKey, requestHash: requestHash({ credits: formatCredits(amount), reason: input.reason }) };
      const result = await balanceWrites.run(balanceId, () => change(balanceId, input, options));
      const entry = result.events[0];
      // A top-up or deduction of a positive amount always records one event first.
      if (entry === undefined) throw new Error(`a change of ${request.body.credits} on balance ${balanceId} recorded no event`);
      const body = { entry: ledgerEntryView(entry), balance: await balanceViewAfterCommand(eventStore, balanceId, result) };
      return reply.code(201).header('idempotent-replayed', String(result.replayed)).send(body);
    };
  }

  app.post<ChangeRoute>(
    '/credit-balances/:balanceId/top-ups',
    { config: { scope: 'write' }, schema: changeSchema('Top up a balance', 'Adds credits (source `manual`).') },
    changeHandler((balanceId, input, options) => ledger.topUp(balanceId, input, options)),
  );

  app.post<ChangeRoute>(
    '/credit-balances/:balanceId/deductions',
    {
      config: { scope: 'write' },
      schema: changeSchema(
        'Deduct credits by hand',
        'Takes credits (source `manual`), e.g. to retain usage recorded elsewhere; the balance may go below zero.',
      ),
    },
    changeHandler((balanceId, input, options) => ledger.deduct(balanceId, input, options)),
  );

  app.get<{ Params: BalanceParams; Querystring: { limit?: string; before?: string } }>(
    '/credit-balances/:balanceId/ledger',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: "A balance's ledger, newest first",
        description: 'Every event of the balance. Pass `next` back as `before` for the following (older) page; `next` is null on the last page.',
        params: balanceParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'string', pattern: LIMIT_PATTERN, description: `Entries per page, 1-500; default ${DEFAULT_LEDGER_PAGE}.` },
            before: { type: 'string', pattern: CURSOR_PATTERN, description: 'The `next` of the previous page.' },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['items', 'next'],
            properties: { items: { type: 'array', items: LEDGER_ENTRY_REF }, next: { type: ['string', 'null'] } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { balanceId } = request.params;
      // The registry, not the page, says whether the balance exists: a page past the end is empty, not a 404.
      if ((await catalog.getBalance(balanceId)) === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
      const { limit, before } = request.query;
      const page = await ledger.readLedger(balanceId, {
        limit: limit === undefined ? DEFAULT_LEDGER_PAGE : Number(limit),
        ...(before !== undefined ? { before: BigInt(before) } : {}),
      });
      return { items: page.items.map(ledgerEntryView), next: page.next === null ? null : page.next.toString() };
    },
  );
}
