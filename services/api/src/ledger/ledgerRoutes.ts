import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { balanceParams, CURSOR_PATTERN, errorResponses, LIMIT_PATTERN, nullableString, refTo } from '../apiSchemas';
import type { LedgerHistory } from './ledgerHistory';
import { LedgerEntrySchema } from './ledgerEntryView';

const DEFAULT_LEDGER_PAGE = 50;

/** The ledger: every change of a balance, the manual ones, purchases, grants and usage alike. */
export const ledgerRoutes: FastifyPluginAsyncTypebox<{ readonly history: LedgerHistory }> = async (app, { history }) => {
  app.get(
    '/credit-balances/:balanceId/ledger',
    {
      config: { scope: 'read', portal: 'balance' },
      schema: {
        tags: ['credit balances'],
        summary: "A balance's ledger, newest first",
        description: 'Every event of the balance. Pass `next` back as `before` for the following (older) page; `next` is null on the last page.',
        params: balanceParams,
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.String({ pattern: LIMIT_PATTERN, description: `Entries per page, 1-500; default ${DEFAULT_LEDGER_PAGE}.` })),
            before: Type.Optional(Type.String({ pattern: CURSOR_PATTERN, description: 'The `next` of the previous page.' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(refTo(LedgerEntrySchema)), next: nullableString() }), ...errorResponses },
      },
    },
    async (request) => {
      const { limit, before } = request.query;
      return history.page(request.params.balanceId, {
        limit: limit === undefined ? DEFAULT_LEDGER_PAGE : Number(limit),
        ...(before !== undefined ? { before: BigInt(before) } : {}),
      });
    },
  );
};
