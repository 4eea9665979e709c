import { BalanceNotFoundError } from '@tally/catalog';
import { parseNonNegativeCredits } from '@tally/domain';
import type { FastifyInstance } from 'fastify';
import { BALANCE_REF, balanceParams, consistentQuerystring, errorResponses, nullableCredits } from '../apiSchemas';
import { balanceViewOfSnapshot } from '../balanceView';
import { balanceViewAfterCommand, balanceViewFromEvents } from '../balanceViewFromEvents';
import type { RouteDeps } from '../routeDeps';
import { waitForConsistency } from '../waitForConsistency';

interface BalanceParams {
  balanceId: string;
}

const tags = ['credit balances'];

/** One balance: read from the read model, settings changed through the ledger. */
export function creditBalances(app: FastifyInstance, deps: RouteDeps): void {
  const { ledger, balances, eventStore, balanceWrites } = deps;

  app.get<{ Params: BalanceParams; Querystring: { consistent?: 'true' | 'false' } }>(
    '/credit-balances/:balanceId',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'Get a balance',
        description:
          'Served from the read model, which may lag the writes by a moment; `consistent=true` waits until it has caught up with every write made before the request. A balance the read model does not hold yet is folded from the event store.',
        params: balanceParams,
        querystring: consistentQuerystring,
        response: { 200: BALANCE_REF, ...errorResponses },
      },
    },
    async (request) => {
      const { balanceId } = request.params;
      if (request.query.consistent === 'true') await waitForConsistency({ balances, eventStore, ...deps.consistency });
      const snapshot = await balances.getBalance(balanceId);
      if (snapshot !== undefined) return balanceViewOfSnapshot(snapshot);
      // Opened a moment ago, or the read model is being rebuilt: the event store has the truth.
      const folded = await balanceViewFromEvents(eventStore, balanceId);
      if (folded === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
      return folded;
    },
  );

  app.patch<{ Params: BalanceParams; Body: { name?: string; lowBalanceThreshold?: string | null } }>(
    '/credit-balances/:balanceId',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        summary: "Rename a balance or change its low-balance threshold",
        params: balanceParams,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 256 },
            lowBalanceThreshold: { ...nullableCredits, description: 'null removes the threshold.' },
          },
        },
        response: { 200: BALANCE_REF, ...errorResponses },
      },
    },
    async (request) => {
      const { balanceId } = request.params;
      const { name, lowBalanceThreshold } = request.body;
      const settings = {
        ...(name !== undefined ? { name } : {}),
        ...(lowBalanceThreshold !== undefined
          ? { lowBalanceThreshold: lowBalanceThreshold === null ? null : parseNonNegativeCredits(lowBalanceThreshold, 'lowBalanceThreshold') }
          : {}),
      };
      const result = await balanceWrites.run(balanceId, () => ledger.changeSettings(balanceId, settings));
      return balanceViewAfterCommand(eventStore, balanceId, result);
    },
  );
}
