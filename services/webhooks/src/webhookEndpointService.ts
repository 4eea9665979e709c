import { randomUUID } from 'node:crypto';
import type { ActingKey } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '@tally/schemas';
import { assertDeliverableUrl, type AddressPolicy } from './addressGuard';
import { WebhookDeliveryNotFoundError, WebhookEndpointNotFoundError, WebhookEventTypeError } from './webhookErrors';
import { isDelivered } from './webhookDispatcher';
import { exampleWebhookPayload } from './webhookExamples';
import { newWebhookSecret } from './webhookSecret';
import type { WebhookSender } from './webhookSender';
import { signWebhook } from './webhookSigner';
import type { WebhookDelivery, WebhookEndpoint, WebhookEndpointChanges, WebhookStore } from './webhookStore';

interface WebhookEndpointServiceOptions extends AddressPolicy {
  readonly store: WebhookStore;
  /** Where a new endpoint starts: it receives the ledger events after the head at its creation. */
  readonly eventStore: Pick<EventStore, 'headPosition'>;
  /** How long a rotated-out secret is still signed with. */
  readonly secretGraceMs: number;
  readonly clock: () => Date;
  /** Sends an endpoint's test message (the deliverer's sender, with the same limits); without it, sendTest refuses. */
  readonly send?: WebhookSender;
}

/** What an endpoint's test message came to: it is not a delivery, and is not recorded. */
export interface WebhookTestResult {
  /** The message's webhook-id: `test_` and a random part, never a real delivery's. */
  readonly webhookId: string;
  readonly eventType: WebhookEventType;
  /** 2xx: what a delivery would count as delivered. */
  readonly delivered: boolean;
  readonly statusCode: number | null;
  readonly error: string | null;
  readonly responseBody: string | null;
  readonly durationMs: number;
}

export interface WebhookEndpointInput {
  readonly url: string;
  readonly events: readonly string[];
  readonly description?: string | null;
}

/** Managing webhook endpoints: what the API's routes call. A change records the key that asked for it (createdBy, updatedBy). */
export interface WebhookEndpointService {
  /** Answers the endpoint with its secret: the only time the secret is shown, with rotation's. */
  create(input: WebhookEndpointInput, createdBy?: ActingKey): Promise<WebhookEndpoint>;
  list(options: { readonly limit: number; readonly after?: string }): Promise<WebhookEndpoint[]>;
  get(id: string): Promise<WebhookEndpoint>;
  update(id: string, changes: Omit<WebhookEndpointChanges, 'events'> & { readonly events?: readonly string[] }, updatedBy?: ActingKey): Promise<WebhookEndpoint>;
  delete(id: string): Promise<void>;
  /** A new secret; the old one stays valid (messages are signed with both) for the grace period. */
  rotateSecret(id: string, updatedBy?: ActingKey): Promise<WebhookEndpoint>;
  deliveries(id: string, options: { readonly limit: number; readonly before?: bigint }): ReturnType<WebhookStore['listDeliveries']>;
  /** Sends a delivery again (whatever became of it), as soon as its balance's earlier ones to the endpoint are through. */
  retry(id: string, deliveryId: string): Promise<WebhookDelivery>;
  /**
   * Sends an example message of `eventType` (default: the endpoint's first) now, signed as a
   * delivery is, and answers what the receiver said; disabled endpoints too, so a receiver can
   * be checked before the endpoint is enabled again.
   */
  sendTest(id: string, eventType?: string): Promise<WebhookTestResult>;
}

function eventTypes(events: readonly string[]): WebhookEventType[] {
  const unknown = events.filter((event) => !(WEBHOOK_EVENT_TYPES as readonly string[]).includes(event));
  if (unknown.length > 0) throw new WebhookEventTypeError(`unknown event type(s) ${unknown.join(', ')}; use ${WEBHOOK_EVENT_TYPES.join(', ')}`);
  if (events.length === 0) throw new WebhookEventTypeError(`events must name at least one of ${WEBHOOK_EVENT_TYPES.join(', ')}`);
  return [...new Set(events as WebhookEventType[])];
}

export function createWebhookEndpointService(options: WebhookEndpointServiceOptions): WebhookEndpointService {
  const { store, clock } = options;
  const found = (endpoint: WebhookEndpoint | undefined, id: string): WebhookEndpoint => {
    if (endpoint === undefined) throw new WebhookEndpointNotFoundError(`no webhook endpoint ${id}`);
    return endpoint;
  };
  return {
    async create(input, createdBy) {
      const events = eventTypes(input.events);
      const url = await assertDeliverableUrl(input.url, options);
      return store.createEndpoint({
        id: randomUUID(),
        url: url.toString(),
        description: input.description ?? null,
        events,
        secret: newWebhookSecret(),
        afterPosition: await options.eventStore.headPosition(),
        ...(createdBy !== undefined ? { createdBy } : {}),
      });
    },
    list: (page) => store.listEndpoints(page),
    async get(id) {
      return found(await store.getEndpoint(id), id);
    },
    async update(id, changes, updatedBy) {
      const events = changes.events === undefined ? undefined : eventTypes(changes.events);
      const url = changes.url === undefined ? undefined : (await assertDeliverableUrl(changes.url, options)).toString();
      return found(
        await store.updateEndpoint(id, {
          ...(url !== undefined ? { url } : {}),
          ...(events !== undefined ? { events } : {}),
          ...(changes.description !== undefined ? { description: changes.description } : {}),
          ...(changes.enabled !== undefined ? { enabled: changes.enabled } : {}),
        }, updatedBy),
        id,
      );
    },
    async delete(id) {
      if (!(await store.deleteEndpoint(id))) throw new WebhookEndpointNotFoundError(`no webhook endpoint ${id}`);
    },
    async rotateSecret(id, updatedBy) {
      return found(await store.rotateSecret(id, newWebhookSecret(), new Date(clock().getTime() + options.secretGraceMs), updatedBy), id);
    },
    async deliveries(id, page) {
      found(await store.getEndpoint(id), id);
      return store.listDeliveries(id, page);
    },
    async retry(id, deliveryId) {
      const delivery = await store.retryDelivery(id, deliveryId, clock());
      if (delivery === undefined) throw new WebhookDeliveryNotFoundError(`no delivery ${deliveryId} of webhook endpoint ${id}`);
      return delivery;
    },
    async sendTest(id, eventType) {
      const endpoint = found(await store.getEndpoint(id), id);
      const [type] = eventType === undefined ? endpoint.events : eventTypes([eventType]);
      if (type === undefined) throw new WebhookEventTypeError('the endpoint receives no event type; name one');
      if (options.send === undefined) throw new Error('no webhook sender was configured for test messages');
      const now = clock();
      // Random, and unlike any delivery's (msg_...): a receiver that deduplicates never drops a real message for it.
      const webhookId = `test_${randomUUID()}`;
      const body = JSON.stringify(exampleWebhookPayload(type, `example-${randomUUID()}`, now));
      const previous = endpoint.previousSecret !== null && endpoint.previousSecret.until > now ? [endpoint.previousSecret.secret] : [];
      const headers = signWebhook({ id: webhookId, timestamp: now, body, secrets: [endpoint.secret, ...previous] });
      const response = await options.send({ url: endpoint.url, headers: { ...headers }, body });
      return {
        webhookId,
        eventType: type,
        delivered: isDelivered(response.statusCode),
        statusCode: response.statusCode,
        error: response.error,
        responseBody: response.body,
        durationMs: response.durationMs,
      };
    },
  };
}
