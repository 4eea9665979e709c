import { ValidationError } from '@tally/domain';
import { usageEventFromJson, type UsagePublisher, type UsageToPublish } from '@tally/metering';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { errorResponses } from '../apiSchemas';
import { addUtf8JsonParser } from '../utf8JsonParser';

interface UsageRoutesOptions {
  readonly publisher: UsagePublisher;
  /** Largest request body in bytes; default 5 MiB (1,000 events of several KiB each). */
  readonly bodyLimit?: number;
}

/** Most events one request may carry. */
const MAX_EVENTS_PER_REQUEST = 1000;
const CLOUDEVENTS_BATCH = 'application/cloudevents-batch+json';
const CLOUDEVENT = 'application/cloudevents+json';

// Each event is checked by the consumer's own validation in the handler, so that one bad event
// is refused alone (with its reason) instead of failing the request.
const eventsArray = Type.Array(Type.Unknown(), { minItems: 1, maxItems: MAX_EVENTS_PER_REQUEST });

// What an event is, for the OpenAPI document only (swaggerTransform below): validating it would
// refuse the whole request for one bad event.
const usageEventDocument = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 256, description: 'Unique per usage event: an event sent again is charged once. May not start with `ce:`.' }),
    customerId: Type.String({ minLength: 1, maxLength: 256 }),
    event: Type.String({ minLength: 1, maxLength: 256, description: 'The name consumption rules match, e.g. api_call.' }),
    timestamp: Type.Union([
      Type.String({ format: 'date-time', description: 'ISO-8601 with a zone (Z or ±hh:mm).' }),
      Type.Integer({ minimum: 100_000_000_000, description: 'Epoch milliseconds; a number below 10^11 is refused as epoch seconds.' }),
    ]),
    properties: Type.Optional(
      Type.Record(Type.String(), Type.Union([Type.Null(), Type.Boolean(), Type.Number(), Type.String()]), {
        description: 'What consumption rules filter on and count; other values are left out.',
      }),
    ),
  },
  { title: 'UsageEvent', description: "Tally's JSON usage event." },
);
const cloudEventDocument = Type.Object(
  {
    specversion: Type.Literal('1.0'),
    id: Type.String({ minLength: 1, description: 'With source, the usage id: a redelivered CloudEvent is charged once.' }),
    source: Type.String({ minLength: 1 }),
    type: Type.String({ minLength: 1, description: 'The event name.' }),
    subject: Type.String({ minLength: 1, description: 'The customer.' }),
    time: Type.String({ format: 'date-time', description: 'When it happened, with a zone.' }),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'The properties.' })),
  },
  { title: 'CloudEvent', description: 'A structured CloudEvent 1.0.' },
);
const documentedEvents = Type.Array(Type.Union([usageEventDocument, cloudEventDocument]), { minItems: 1, maxItems: MAX_EVENTS_PER_REQUEST });
const documentedBody = {
  content: {
    'application/json': { schema: Type.Object({ events: documentedEvents }, { additionalProperties: false }) },
    [CLOUDEVENTS_BATCH]: { schema: Type.Array(cloudEventDocument, { minItems: 1, maxItems: MAX_EVENTS_PER_REQUEST }) },
    [CLOUDEVENT]: { schema: cloudEventDocument },
  },
};

const refusalSchema = Type.Object({
  index: Type.Integer({ description: 'Position of the event in the request' }),
  id: Type.Optional(Type.String({ description: "The event's id (or a CloudEvent's), when it had one" })),
  error: Type.String(),
  message: Type.String(),
});
const refusedSchema = Type.Array(refusalSchema);

const tags = ['usage'];

/**
 * HTTP ingestion for backends without a Kafka client. Accepted events are produced to the usage
 * topic and answered 202 once every in-sync replica has them; the metering consumer then charges
 * them like any other, so there is one metering path, and a retried request is charged once
 * (by event id, or a CloudEvent's source and id). Nothing is charged by the time of the answer.
 */
export const usageRoutes: FastifyPluginAsyncTypebox<UsageRoutesOptions> = async (app, deps) => {
  // A CloudEvents JSON batch (the spec's batched content mode) is JSON under its own media type.
  // One CloudEvent in the HTTP binding's structured mode is JSON too. Bytes that are not UTF-8 are
  // refused under these types as under application/json (buildApp).
  addUtf8JsonParser(app, [CLOUDEVENTS_BATCH, CLOUDEVENT]);

  app.post(
    '/usage-events',
    {
      // Producers hold `ingest` keys: they may send usage and nothing else (accessGuard.ts).
      // Each event's text is judged by the consumer's rules (usageEventFromJson: NUL in ids and
      // names, lone surrogates in those and in properties), so one bad string refuses its event,
      // not the other 999 (rejectUnstorableText).
      config: {
        scope: 'ingest',
        bodyTextCheckedByHandler: true,
        // The document shows what an event is; Fastify validates the body as the schema below.
        swaggerTransform: ({ schema, url }) => ({ schema: { ...schema, body: documentedBody }, url }),
      },
      bodyLimit: deps.bodyLimit ?? 5 * 1024 * 1024,
      schema: {
        tags,
        operationId: 'sendUsageEvents',
        summary: 'Send usage events',
        description:
          `Up to ${MAX_EVENTS_PER_REQUEST} usage events: \`application/json\` with \`{ "events": [...] }\` (Tally's JSON usage events or ` +
          `structured CloudEvents 1.0), \`${CLOUDEVENTS_BATCH}\` with an array of CloudEvents, or \`${CLOUDEVENT}\` with one. Each is validated as the metering ` +
          'consumer validates it; the valid ones are published to the usage topic and the answer (202) comes once Kafka has them. ' +
          'An event larger than the usage topic takes (its `max.message.bytes`) is refused alone, as `usage_event_too_large`. ' +
          'Balances change when the consumer has metered them (usually within a second). A 503 means some accepted events may not be on the topic ' +
          '(those before the failure may be): retry the request. Retrying a request is safe: an event id ' +
          "(a CloudEvent's source and id) is charged once.",
        body: {
          content: {
            'application/json': {
              schema: Type.Object({ events: eventsArray }, { additionalProperties: false }),
            },
            [CLOUDEVENTS_BATCH]: { schema: eventsArray },
            [CLOUDEVENT]: { schema: Type.Unsafe<Record<string, unknown>>({ type: 'object' }) },
          },
        },
        response: {
          202: Type.Object(
            { accepted: Type.Integer(), refused: refusedSchema },
            { description: 'The accepted events are on the usage topic; the refused ones are listed with their reasons.' },
          ),
          400: Type.Object(
            { error: Type.String(), message: Type.String(), refused: Type.Optional(refusedSchema) },
            { description: 'Malformed request, or every event was refused (listed with their reasons).' },
          ),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      // Media types are case-insensitive (RFC 9110), as Fastify's parser and schema choice take
      // them: `Application/CloudEvents+JSON` is a CloudEvent here too, never read as Tally's JSON.
      const mediaType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      const body: unknown = request.body;
      // Without a content type no parser or schema ran: a request without a body gets here.
      if (body === undefined || body === null) {
        throw new ValidationError(`the request has no body: send {"events": [...]} as application/json, an array of CloudEvents as ${CLOUDEVENTS_BATCH}, or one as ${CLOUDEVENT}`);
      }
      const cloudEventsOnly = mediaType === CLOUDEVENTS_BATCH || mediaType === CLOUDEVENT;
      const records = mediaType === CLOUDEVENTS_BATCH ? (body as unknown[]) : mediaType === CLOUDEVENT ? [body] : (body as { events: unknown[] }).events;
      const accepted: UsageToPublish[] = [];
      // Each accepted event's index in the request, for the publisher's refusals.
      const acceptedAt: number[] = [];
      const refused: Static<typeof refusalSchema>[] = [];
      records.forEach((record, index) => {
        const id = idOf(record);
        const cloudEvent = record !== null && typeof record === 'object' && 'specversion' in record;
        try {
          if (cloudEventsOnly && !cloudEvent) throw new ValidationError(`${mediaType} takes CloudEvents only (specversion missing)`);
          // First: it refuses an event nested deeper than MAX_USAGE_EVENT_DEPTH (64 levels), which
          // JSON.stringify below would overflow the stack on (a 500 for the whole request).
          const usage = usageEventFromJson(record);
          accepted.push({
            usage,
            // The event as sent: the consumer decodes these very bytes, with the same validation.
            value: Buffer.from(JSON.stringify(record)),
            ...(cloudEvent ? { headers: { 'content-type': CLOUDEVENT } } : {}),
          });
          acceptedAt.push(index);
        } catch (error) {
          if (!(error instanceof ValidationError)) throw error;
          refused.push({ index, ...(id === undefined ? {} : { id }), error: error.code, message: error.message });
        }
      });
      if (accepted.length === 0) {
        return reply.code(400).send({ error: 'invalid_usage_events', message: `all ${refused.length} event(s) were refused`, refused });
      }
      const published = await deps.publisher.publish(accepted);
      // An event larger than the usage topic takes is refused alone, like an invalid one.
      for (const { index, error } of published.refused) {
        const at = acceptedAt[index]!;
        const id = idOf(records[at]);
        refused.push({ index: at, ...(id === undefined ? {} : { id }), error: error.code, message: error.message });
      }
      refused.sort((a, b) => a.index - b.index);
      const publishedCount = accepted.length - published.refused.length;
      if (publishedCount === 0) {
        return reply.code(400).send({ error: 'invalid_usage_events', message: `all ${refused.length} event(s) were refused`, refused });
      }
      return reply.code(202).send({ accepted: publishedCount, refused });
    },
  );
};

function idOf(record: unknown): string | undefined {
  const id = record !== null && typeof record === 'object' ? (record as { id?: unknown }).id : undefined;
  return typeof id === 'string' ? id.slice(0, 256) : undefined;
}
