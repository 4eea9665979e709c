import { ValidationError } from '@tally/domain';
import { usageEventFromJson, type UsagePublisher, type UsageToPublish } from '@tally/metering';
import type { FastifyInstance } from 'fastify';
import { errorResponses } from '../apiSchemas';

export interface UsageEventRouteDeps {
  readonly publisher: UsagePublisher;
  /** Largest request body in bytes; default 5 MiB (1,000 events of several KiB each). */
  readonly bodyLimit?: number;
}

/** Most events one request may carry. */
export const MAX_EVENTS_PER_REQUEST = 1000;
const CLOUDEVENTS_BATCH = 'application/cloudevents-batch+json';
const CLOUDEVENT = 'application/cloudevents+json';

interface Refusal {
  readonly index: number;
  readonly id?: string;
  readonly error: string;
  readonly message: string;
}

const eventsArray = {
  type: 'array',
  minItems: 1,
  maxItems: MAX_EVENTS_PER_REQUEST,
  // Each event is checked by the consumer's own validation in the handler, so that one bad event
  // is refused alone (with its reason) instead of failing the request.
  items: {},
} as const;

const refusedSchema = {
  type: 'array',
  items: {
    type: 'object',
    required: ['index', 'error', 'message'],
    properties: {
      index: { type: 'integer', description: 'Position of the event in the request' },
      id: { type: 'string', description: "The event's id (or a CloudEvent's), when it had one" },
      error: { type: 'string' },
      message: { type: 'string' },
    },
  },
} as const;

const tags = ['usage'];

/**
 * HTTP ingestion for backends without a Kafka client. Accepted events are produced to the usage
 * topic and answered 202 once every in-sync replica has them; the metering consumer then charges
 * them like any other, so there is one metering path, and a retried request is charged once
 * (by event id, or a CloudEvent's source and id). Nothing is charged by the time of the answer.
 */
export async function usageEvents(app: FastifyInstance, deps: UsageEventRouteDeps): Promise<void> {
  // A CloudEvents JSON batch (the spec's batched content mode) is JSON under its own media type.
  // One CloudEvent in the HTTP binding's structured mode is JSON too.
  app.addContentTypeParser([CLOUDEVENTS_BATCH, CLOUDEVENT], { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));

  app.post<{ Body: { events: unknown[] } | unknown[] | Record<string, unknown> }>(
    '/usage-events',
    {
      // Producers hold `ingest` keys: they may send usage and nothing else (accessGuard.ts).
      config: { scope: 'ingest' },
      bodyLimit: deps.bodyLimit ?? 5 * 1024 * 1024,
      schema: {
        tags,
        summary: 'Send usage events',
        description:
          `Up to ${MAX_EVENTS_PER_REQUEST} usage events: \`application/json\` with \`{ "events": [...] }\` (Tally's JSON usage events or ` +
          `structured CloudEvents 1.0), \`${CLOUDEVENTS_BATCH}\` with an array of CloudEvents, or \`${CLOUDEVENT}\` with one. Each is validated as the metering ` +
          'consumer validates it; the valid ones are published to the usage topic and the answer (202) comes once Kafka has them. ' +
          'Balances change when the consumer has metered them (usually within a second). Retrying a request is safe: an event id ' +
          "(a CloudEvent's source and id) is charged once.",
        body: {
          content: {
            'application/json': {
              schema: { type: 'object', required: ['events'], additionalProperties: false, properties: { events: eventsArray } },
            },
            [CLOUDEVENTS_BATCH]: { schema: eventsArray },
            [CLOUDEVENT]: { schema: { type: 'object' } },
          },
        },
        response: {
          202: {
            description: 'The accepted events are on the usage topic; the refused ones are listed with their reasons.',
            type: 'object',
            required: ['accepted', 'refused'],
            properties: { accepted: { type: 'integer' }, refused: refusedSchema },
          },
          400: {
            description: 'Malformed request, or every event was refused (listed with their reasons).',
            type: 'object',
            required: ['error', 'message'],
            properties: { error: { type: 'string' }, message: { type: 'string' }, refused: refusedSchema },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const contentType = request.headers['content-type'] ?? '';
      const cloudEventsOnly = contentType.startsWith(CLOUDEVENTS_BATCH) || contentType.startsWith(CLOUDEVENT);
      const body = request.body;
      const records = Array.isArray(body) ? body : contentType.startsWith(CLOUDEVENT) ? [body] : (body as { events: unknown[] }).events;
      const accepted: UsageToPublish[] = [];
      const refused: Refusal[] = [];
      records.forEach((record, index) => {
        const id = idOf(record);
        const cloudEvent = record !== null && typeof record === 'object' && 'specversion' in record;
        try {
          if (cloudEventsOnly && !cloudEvent) throw new ValidationError(`${contentType.split(';')[0]} takes CloudEvents only (specversion missing)`);
          accepted.push({
            usage: usageEventFromJson(record),
            // The event as sent: the consumer decodes these very bytes, with the same validation.
            value: Buffer.from(JSON.stringify(record)),
            ...(cloudEvent ? { headers: { 'content-type': CLOUDEVENT } } : {}),
          });
        } catch (error) {
          if (!(error instanceof ValidationError)) throw error;
          refused.push({ index, ...(id === undefined ? {} : { id }), error: error.code, message: error.message });
        }
      });
      if (accepted.length === 0) {
        return reply.code(400).send({ error: 'invalid_usage_events', message: `all ${refused.length} event(s) were refused`, refused });
      }
      await deps.publisher.publish(accepted);
      return reply.code(202).send({ accepted: accepted.length, refused });
    },
  );
}

function idOf(record: unknown): string | undefined {
  const id = record !== null && typeof record === 'object' ? (record as { id?: unknown }).id : undefined;
  return typeof id === 'string' ? id.slice(0, 256) : undefined;
}
