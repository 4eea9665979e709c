import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { balanceParams, errorResponses, nullableString, refTo } from '../apiSchemas';
import { beforePageQuery, pageSize } from '../pagination';
import type { LedgerHistory } from './ledgerHistory';
import { LedgerEntrySchema } from './ledgerEntryView';

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
        querystring: beforePageQuery('Entries'),
        response: { 200: Type.Object({ items: Type.Array(refTo(LedgerEntrySchema)), next: nullableString() }), ...errorResponses },
      },
    },
    async (request) => {
      const { before } = request.query;
      return history.page(request.params.balanceId, {
        limit: pageSize(request.query),
        ...(before !== undefined ? { before: BigInt(before) } : {}),
      });
    },
  );
};
