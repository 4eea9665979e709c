import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { processorStatusView, type ProcessorStatus } from '@tally/runtime';
import { errorResponses } from '../apiSchemas';

const ProcessorSchema = Type.Object({
  name: Type.String({ description: 'The checkpoint and lease name, e.g. `ledger-relay:credit-ledger`.' }),
  position: Type.String({ description: 'The global position of the last event it finished with.' }),
  behind: Type.String({ description: "Positions between its checkpoint and the event store's head: an upper bound of the events it has still to handle." }),
  savedAt: Type.String({ format: 'date-time', description: 'When it last saved its checkpoint.' }),
  leader: Type.Union(
    [
      Type.Object({
        pid: Type.Integer({ description: "The leading session's PostgreSQL backend pid." }),
        applicationName: Type.String({ description: 'The application name its pool connected with, `tally-<roles>` for the main job.' }),
      }),
      Type.Null(),
    ],
    { description: 'The session holding its lease; null when no process runs it.' },
  ),
});

const ProcessorsSchema = Type.Object({
  head: Type.String({ description: "The event store's head position when read." }),
  items: Type.Array(ProcessorSchema),
});

export type ProcessorsView = Static<typeof ProcessorsSchema>;

/**
 * What the route reads; main.ts wires it to @tally/runtime's readProcessorStatus, which throws
 * ProcessorStatusUnavailableError (503 with Retry-After) only when PostgreSQL does not answer.
 */
export type ReadProcessors = () => Promise<{ readonly head: bigint; readonly processors: readonly ProcessorStatus[] }>;

/** The checkpointed processors of the whole deployment, for the console's Status page and scripts. */
export const processorRoutes: FastifyPluginAsyncTypebox<{ readonly read: ReadProcessors }> = async (app, { read }) => {
  app.get(
    '/processors',
    {
      // Admin: pids and application names are the operator's business.
      config: { scope: 'admin' },
      schema: {
        tags: ['operations'],
        operationId: 'listProcessors',
        summary: 'The checkpointed processors, whichever process runs them',
        description:
          'Every processor that has saved a checkpoint in PostgreSQL (the ledger relay, the consumption projector, webhooks, hold expiry; the balance projector keeps its position in Redis, with the snapshots): its position, how far behind the event store it stands, when it last saved and the session that leads it, read from PostgreSQL, as `tally processors` prints them. 503 processors_unavailable (with Retry-After) when PostgreSQL does not answer.',
        response: { 200: ProcessorsSchema, ...errorResponses },
      },
    },
    async () => processorStatusView(await read()),
  );
};
