import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { formatCredits, ValidationError } from '@tally/domain';
import { BalanceNotFoundError, type BalanceRegistry, type ConsumptionBucketSize, type ConsumptionStore } from '@tally/ledger';
import { answeredCredits, balanceParams, errorResponses, nullableString, stringEnum } from '../apiSchemas';
import { requestInstant } from '../requestInstant';

interface ConsumptionRoutesOptions {
  readonly consumption: ConsumptionStore;
  readonly balanceRegistry: Pick<BalanceRegistry, 'getBalance'>;
  readonly now: () => Date;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** The widest range per bucket size, so that one answer stays small (at most ~750 buckets per event name). */
const MAX_RANGE_MS: Readonly<Record<ConsumptionBucketSize, number>> = { hour: 31 * DAY_MS, day: 731 * DAY_MS };
const DEFAULT_RANGE_MS: Readonly<Record<ConsumptionBucketSize, number>> = { hour: DAY_MS, day: 30 * DAY_MS };

const bucketSize = stringEnum(['hour', 'day'] as const);

/** Consumption over time, for the console's and the portal's charts. */
export const consumptionRoutes: FastifyPluginAsyncTypebox<ConsumptionRoutesOptions> = async (app, deps) => {
  app.get(
    '/credit-balances/:balanceId/consumption',
    {
      config: { scope: 'read', portal: 'balance' },
      schema: {
        tags: ['credit balances'],
        operationId: 'getBalanceConsumption',
        summary: "A balance's consumption over time, per bucket and usage event name",
        description:
          'Credits consumed (usage, and credits retained by hand with `event` null) summed per hour or per UTC day (the one the charge was metered in, not the usage event\'s own timestamp) and per usage event name, from `from` (rounded down to its bucket) to `to` (exclusive). Defaults: `bucket=hour`, `to` now, `from` one day (hours) or 30 days (days) before `to`; at most 31 days of hours or 731 of days. Buckets without consumption are left out. Served from a projection of the ledger that may lag the writes by a moment: `position` is the event store position it reflects (as a balance\'s `position` is).',
        params: balanceParams,
        querystring: Type.Object(
          {
            from: Type.Optional(Type.String({ format: 'date-time' })),
            to: Type.Optional(Type.String({ format: 'date-time' })),
            bucket: Type.Optional(bucketSize),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            bucket: bucketSize,
            position: Type.String({ description: 'Global event store position these sums reflect: every ledger event up to it, none after.' }),
            from: Type.String({ format: 'date-time' }),
            to: Type.String({ format: 'date-time' }),
            items: Type.Array(
              Type.Object({
                start: Type.String({ format: 'date-time' }),
                event: nullableString({ description: 'The usage event name; null for credits retained by hand.' }),
                credits: answeredCredits('Credits charged, decimal string. A refunded charge stays counted, as the ledger keeps it.'),
                refunded: answeredCredits(
                  'Of `credits`, what refunds gave back (POST /v1/credit-balances/{balanceId}/refunds), counted in the bucket of the charge each refunds whenever it was made; `credits` − `refunded` is what the usage cost in the end. Decimal string.',
                ),
                entries: Type.Integer({ description: 'How many charges (ledger entries) the bucket sums.' }),
              }),
            ),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { balanceId } = request.params;
      const bucket = request.query.bucket ?? 'hour';
      const to = requestInstant(request.query.to, 'to') ?? deps.now();
      const from = requestInstant(request.query.from, 'from') ?? new Date(to.getTime() - DEFAULT_RANGE_MS[bucket]);
      if (from.getTime() >= to.getTime()) throw new ValidationError('from must be before to');
      if (to.getTime() - from.getTime() > MAX_RANGE_MS[bucket]) {
        throw new ValidationError(`a range of ${bucket}s spans at most ${MAX_RANGE_MS[bucket] / DAY_MS} days`);
      }
      // Read beside the registry: an unknown balance has no buckets, and is answered 404 all the same.
      const [balance, { position, buckets }] = await Promise.all([deps.balanceRegistry.getBalance(balanceId), deps.consumption.consumption(balanceId, { from, to, bucket })]);
      if (balance === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
      return {
        bucket,
        position: position.toString(),
        from: from.toISOString(),
        to: to.toISOString(),
        items: buckets.map((item) => ({ start: item.start.toISOString(), event: item.event, credits: formatCredits(item.credits), refunded: formatCredits(item.refunded), entries: item.entries })),
      };
    },
  );
};
