import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ValidationError } from '@tally/domain';
import { requestInstant } from '../requestInstant';
import { DEAD_LETTER_OFFSET_PATTERN, DEAD_LETTER_PARTITION_PATTERN, DEAD_LETTER_PLACE_PATTERN, MAX_PICKED_DEAD_LETTERS, type DeadLetterLog, type DeadLetterReader, type DeadLetterRedrives } from '@tally/metering';
import { actingKeyOf } from '../accessGuard';
import { actingKey, errorResponses, IDENTIFIER_PATTERN, LIMIT_PATTERN, nullableString, params, stringEnum } from '../apiSchemas';
import { pageSize } from '../pagination';

interface DeadLetterRoutesOptions {
  readonly deadLetters: Pick<DeadLetterLog, 'recent'>;
  /** Sending letters back from the API; without it the routes are not there (`tally redrive` still is). */
  readonly redrives?: Omit<DeadLetterRedrives, 'stop' | 'counters'>;
  /** Reading one letter whole from the dead-letter topic; without it that route is not there. */
  readonly letters?: DeadLetterReader;
}

const nullableInteger = Type.Unsafe<number | null>({ type: ['integer', 'null'] });

/** What the list and the whole letter both say: the dead-letter headers, read into fields. */
const deadLetterFields = {
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
  customerId: nullableString({ description: 'The customer the value names, when it could be read from it (even from an event that failed validation); null when it could not.' }),
  usageEventId: nullableString({
    description: 'The usage event id the value names, as GET /v1/customers/{customerId}/usage-events/{eventId} takes it (a CloudEvent\'s joined from its source and id); null when it could not be read.',
  }),
};

const DeadLetterSchema = Type.Object({
  ...deadLetterFields,
  sentBackAt: nullableString({
    format: 'date-time',
    description: 'When a send-back (POST /v1/dead-letters/redrives, tally redrive) last sent it to the usage topic; null if none has (the newest 10,000 marks are kept). It stays listed: the letter stays on the dead-letter topic.',
  }),
});

const WholeDeadLetterSchema = Type.Object({
  ...deadLetterFields,
  storedAt: Type.String({ format: 'date-time', description: 'When Kafka stored the letter.' }),
  headers: Type.Array(
    Type.Object({
      name: Type.String(),
      value: nullableString({ description: 'null for a header without a value (Kafka\'s length -1), unlike an empty one.' }),
      encoding: stringEnum(['utf8', 'base64'] as const, { description: 'base64 when the value is not UTF-8 text.' }),
    }),
    { description: "Every header in order: the dead letter's own (tally.dlq.*, tally.source.*) and the producer's. A name may occur more than once." },
  ),
  value: Type.Union(
    [
      Type.Object({
        bytes: Type.Integer({ minimum: 0 }),
        base64: Type.String({ description: 'The value whole, as the topic holds it (cut at 256 KiB when the letter was written; tally.dlq.value-truncated-from says so).' }),
        format: Type.Union([stringEnum(['avro', 'json'] as const), Type.Null()], {
          description: 'avro: Confluent-framed, decoded with its writer\'s schema from the registry; json: parsed; null: neither could be read (see unreadable).',
        }),
        schemaId: nullableInteger,
        record: Type.Unknown({ description: 'The record as the producer wrote it, before any validation; null when unreadable.' }),
        unreadable: nullableString({ description: 'Why no record could be read from the value, read again now.' }),
      }),
      Type.Null(),
    ],
    { description: 'null for a letter without a value.' },
  ),
});

/** A dead letter as GET /v1/dead-letters answers it. */
export type DeadLetterView = Static<typeof DeadLetterSchema>;

/** A dead letter whole, as GET /v1/dead-letters/{partition}/{offset} answers it. */
export type WholeDeadLetterView = Static<typeof WholeDeadLetterSchema>;

const count = (description: string) => Type.Integer({ minimum: 0, description });

const RedriveSchema = Type.Object({
  id: Type.String(),
  status: stringEnum(['running', 'succeeded', 'failed', 'interrupted', 'cancelled'] as const, {
    description:
      'interrupted: its process stopped before the end; cancelled: stopped over POST /v1/dead-letters/redrives/{id}/cancel. Either way what it sent stays sent, and starting it again sends the rest.',
  }),
  via: stringEnum(['api', 'cli'] as const, { description: 'Where it was started: api (the console, or POST /v1/dead-letters/redrives), or cli (`tally redrive` in a shell, which has no key: requestedBy is null).' }),
  errorCodes: Type.Unsafe<readonly string[] | 'all'>({
    anyOf: [{ type: 'array', items: { type: 'string' } }, { type: 'string', enum: ['all'] }],
    description: 'The error codes sent back, or "all".',
  }),
  letters: Type.Unsafe<readonly string[] | null>({
    anyOf: [{ type: 'array', items: { type: 'string' } }, { type: 'null' }],
    description: 'The letters picked, each "<partition>:<offset>" on the dead-letter topic (errorCodes is then "all"); null when chosen by error code.',
  }),
  since: nullableString({ format: 'date-time', description: 'Only letters dead-lettered from then on.' }),
  dryRun: Type.Boolean({ description: 'Counted only: nothing was sent.' }),
  requestedBy: actingKey('The API key (or console session) that started it; null for `tally redrive`.'),
  startedAt: Type.String({ format: 'date-time' }),
  finishedAt: nullableString({ format: 'date-time' }),
  result: Type.Object(
    {
      read: count('Letters read: every letter the topic had when the run started (so far, while running).'),
      republished: count('Letters sent back to the usage topic (in a dry run: that would have been).'),
      republishedByErrorCode: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
      skipped: Type.Object({
        not_selected: count('Of another error code, or dead-lettered before `since`.'),
        raw_batch: count('Raw record batches (`tally skip-batch`): not single messages.'),
        cut: count('Cut to fit the dead-letter topic: the whole original is on its source topic only.'),
        other_source: count('Not from the usage topic.'),
        too_large: count('Larger than the usage topic takes (its `max.message.bytes`): left in the dead-letter topic, named in `tooLarge`.'),
      }),
      notFound: Type.Unsafe<readonly string[]>({
        type: 'array',
        items: { type: 'string' },
        description:
          'Picked letters (`letters`) the topic has no letter at: past the end of their partition (or its retention), or on a partition it does not have. Nothing was sent for them; filled in when the run has read to the end, empty before and when nothing was picked.',
      }),
      tooLarge: Type.Unsafe<readonly string[]>({
        type: 'array',
        items: { type: 'string' },
        description:
          'The letters `skipped.too_large` counts, each "<partition>:<offset>", in the order read (the first 100, as many as `letters` picks): the usage topic refused each as larger than its `max.message.bytes`. Not sent back and not marked so; once that is raised, pick them by `letters` to send them back alone.',
      }),
    },
    { description: 'The counts so far; final once it no longer runs.' },
  ),
  error: nullableString({ description: 'Why it failed or was interrupted.' }),
  cancelRequestedBy: actingKey('The API key (or console session) that asked it to stop.'),
  cancelRequestedAt: nullableString({ format: 'date-time', description: 'When it was asked to stop; while still `running`, it stops after the batch at hand.' }),
});

/** A send-back of dead letters as the API answers it. */
export type RedriveView = Static<typeof RedriveSchema>;

const RedriveRequestSchema = Type.Object(
  {
    errorCodes: Type.Optional(
      Type.Array(Type.String({ pattern: IDENTIFIER_PATTERN }), {
        minItems: 1,
        maxItems: 50,
        uniqueItems: true,
        description: 'Send back the letters of these error codes (`errorCode` of GET /v1/dead-letters).',
      }),
    ),
    all: Type.Optional(Type.Boolean({ description: 'true: the letters of every error code. Exactly one of `errorCodes`, `all: true` and `letters`.' })),
    letters: Type.Optional(
      Type.Array(Type.String({ pattern: DEAD_LETTER_PLACE_PATTERN }), {
        minItems: 1,
        maxItems: MAX_PICKED_DEAD_LETTERS,
        uniqueItems: true,
        description: 'Send back these letters, each "<partition>:<offset>" on the dead-letter topic (`partition` and `offset` of GET /v1/dead-letters), whatever their error code.',
      }),
    ),
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Only letters dead-lettered from then on.' })),
    dryRun: Type.Optional(Type.Boolean({ description: 'Read and count what would be sent back; send nothing.' })),
  },
  { additionalProperties: false },
);

/** What could not be metered lately: an operator sees a broken producer without reading Kafka. */
export const deadLetterRoutes: FastifyPluginAsyncTypebox<DeadLetterRoutesOptions> = async (app, { deadLetters, redrives, letters }) => {
  app.get(
    '/dead-letters',
    {
      // Admin: dead letters carry what producers sent, customer ids included.
      config: { scope: 'admin' },
      schema: {
        tags: ['operations'],
        operationId: 'listDeadLetters',
        summary: 'The most recent usage events that could not be metered',
        description:
          'Newest first, from the dead-letter log the API processes keep (the newest 1,000, read from the dead-letter topic); each with its reason and where it came from. The whole letter stays on the dead-letter topic at `partition` and `offset`. `errorCode`, `key` and `usageEventId` narrow the list to the letters of that code, of that key (the customer), that name that usage event, or all of these.',
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.String({ pattern: LIMIT_PATTERN, description: 'How many, 1-500; default 50.' })),
            errorCode: Type.Optional(Type.String({ pattern: IDENTIFIER_PATTERN, description: 'Only letters of this error code.' })),
            key: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Only letters with this message key (producers set it to the customer id).' })),
            usageEventId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Only letters that name this usage event (`usageEventId`).' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(DeadLetterSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const { errorCode, key, usageEventId } = request.query;
      return { items: await deadLetters.recent(pageSize(request.query), { errorCode, key, usageEventIds: usageEventId === undefined ? undefined : [usageEventId] }) };
    },
  );

  if (letters !== undefined) {
    app.get(
      '/dead-letters/:partition/:offset',
      {
        config: { scope: 'admin' },
        schema: {
          tags: ['operations'],
          operationId: 'getDeadLetter',
          summary: 'One dead letter, whole',
          description:
            "Read from the dead-letter topic at the list's `partition` and `offset`: every header, and the value whole (base64), with the record in it decoded where it can be (Avro with its writer's schema from the registry, or JSON), else why not. Each read joins the topic as a consumer of its own, which commits nothing: about a second. 404 dead_letter_not_found when nothing is there (never written, or past the topic's retention); 503 dead_letters_unavailable when Kafka does not answer.",
          params: params({
            partition: Type.String({ pattern: DEAD_LETTER_PARTITION_PATTERN, description: 'Partition of the dead-letter topic.' }),
            offset: Type.String({ pattern: DEAD_LETTER_OFFSET_PATTERN, description: 'Offset on the dead-letter topic.' }),
          }),
          response: { 200: WholeDeadLetterSchema, ...errorResponses },
        },
      },
      async (request) => {
        const letter = await letters.read(Number(request.params.partition), request.params.offset);
        return { ...letter, headers: [...letter.headers] };
      },
    );
  }

  if (redrives === undefined) return;
  const redriveTags = ['operations'];

  app.post(
    '/dead-letters/redrives',
    {
      // Admin, as `tally redrive`: it puts usage back in front of the consumer.
      config: { scope: 'admin' },
      schema: {
        tags: redriveTags,
        operationId: 'createRedrive',
        summary: 'Send dead letters back to the usage topic',
        description:
          'Once what made them fail is fixed (a balance opened, a schema restored, a release deployed): the letters of the error codes named (or the letters picked by place), as the producer sent them, up to the letters the dead-letter topic holds when the run starts. It runs in the background; the answer (202) is the run as started, and GET /v1/dead-letters/redrives/{id} follows it. One run at a time across the deployment (409 redrive_running), `tally redrive` included. Sending a letter back twice charges nothing twice: each ledger event\'s id derives from the usage event\'s id.',
        body: RedriveRequestSchema,
        response: { 202: RedriveSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { errorCodes, all, letters, since, dryRun } = request.body;
      // A letter refused for what it is (invalid_usage_event) only comes back: the codes are chosen.
      if ([all === true, errorCodes !== undefined, letters !== undefined].filter(Boolean).length !== 1) {
        throw new ValidationError('name the letters to send back: one of errorCodes, "all": true and letters');
      }
      const started = await redrives.start({
        errorCodes: errorCodes ?? 'all',
        ...(letters !== undefined ? { letters } : {}),
        ...(since !== undefined ? { since: requestInstant(since, 'since') } : {}),
        ...(dryRun === true ? { dryRun: true } : {}),
        requestedBy: actingKeyOf(request),
      });
      return reply.code(202).header('location', `/v1/dead-letters/redrives/${started.id}`).send(started);
    },
  );

  app.get(
    '/dead-letters/redrives',
    {
      config: { scope: 'admin' },
      schema: {
        tags: redriveTags,
        operationId: 'listRedrives',
        summary: 'The latest send-backs of dead letters',
        description: 'Newest first; the last 50 are kept.',
        querystring: Type.Object(
          { limit: Type.Optional(Type.String({ pattern: LIMIT_PATTERN, description: 'How many, 1-500 (the last 50 are kept); default 50.' })) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(RedriveSchema) }), ...errorResponses },
      },
    },
    async (request) => ({ items: await redrives.list(pageSize(request.query)) }),
  );

  app.get(
    '/dead-letters/redrives/:redriveId',
    {
      config: { scope: 'admin' },
      schema: {
        tags: redriveTags,
        operationId: 'getRedrive',
        summary: 'One send-back of dead letters, as it stands',
        params: params({ redriveId: Type.String({ pattern: '^[0-9a-f-]{36}$' }) }),
        response: { 200: RedriveSchema, ...errorResponses },
      },
    },
    async (request) => redrives.get(request.params.redriveId),
  );

  app.post(
    '/dead-letters/redrives/:redriveId/cancel',
    {
      config: { scope: 'admin' },
      schema: {
        tags: redriveTags,
        operationId: 'cancelRedrive',
        summary: 'Stop a send-back of dead letters',
        description:
          'It stops after the batch at hand, whichever API process runs it, and ends `cancelled`. What it sent stays sent (and is metered); starting a send-back again sends the rest, and again what was sent, which charges nothing twice. 202 with the run: already `cancelled` when this process ran it, else still `running` with `cancelRequestedAt` set until its process notices, within a second. 409 redrive_not_running once it has ended.',
        params: params({ redriveId: Type.String({ pattern: '^[0-9a-f-]{36}$' }) }),
        response: { 202: RedriveSchema, ...errorResponses },
      },
    },
    async (request, reply) => reply.code(202).send(await redrives.cancel(request.params.redriveId, actingKeyOf(request))),
  );
};
