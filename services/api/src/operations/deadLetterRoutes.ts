import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { DeadLetterLog } from '@tally/metering';
import { errorResponses, LIMIT_PATTERN, nullableString } from '../apiSchemas';
import { pageSize } from '../pagination';

interface DeadLetterRoutesOptions {
  readonly deadLetters: Pick<DeadLetterLog, 'recent'>;
}

const nullableInteger = Type.Unsafe<number | null>({ type: ['integer', 'null'] });

const DeadLetterSchema = Type.Object({
  partition: Type.Integer({ description: 'Partition of the dead-letter topic.' }),
  offset: Type.String({ description: 'Offset on the dead-letter topic, where the whole letter is.' }),
  deadLetteredAt: Type.String({ format: 'date-time' }),
  errorCode: nullableString({ description: 'e.g. invalid_usage_event, unknown_schema_id, unmeterable_usage.' }),
  reason: nullableString(),
  causeCode: nullableString(),
  sourceTopic: nullableString(),
  sourcePartition: nullableInteger,
  sourceOffset: nullableString(),
  key: nullableString({ description: 'The message key (the customer id, as producers set it).' }),
  valuePreview: nullableString({ description: 'The start of the value as text.' }),
});

/** A dead letter as GET /v1/dead-letters answers it. */
export type DeadLetterView = Static<typeof DeadLetterSchema>;

/** What could not be metered lately: an operator sees a broken producer without reading Kafka. */
export const deadLetterRoutes: FastifyPluginAsyncTypebox<DeadLetterRoutesOptions> = async (app, { deadLetters }) => {
  app.get(
    '/dead-letters',
    {
      // Admin: dead letters carry what producers sent, customer ids included.
      config: { scope: 'admin' },
      schema: {
        tags: ['operations'],
        summary: 'The most recent usage events that could not be metered',
        description:
          'Newest first, from the dead-letter log the API processes keep (the newest 1,000, read from the dead-letter topic); each with its reason and where it came from. The whole letter stays on the dead-letter topic at `partition` and `offset`.',
        querystring: Type.Object(
          { limit: Type.Optional(Type.String({ pattern: LIMIT_PATTERN, description: 'How many, 1-500; default 50.' })) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(DeadLetterSchema) }), ...errorResponses },
      },
    },
    async (request) => ({ items: await deadLetters.recent(pageSize(request.query)) }),
  );
};
