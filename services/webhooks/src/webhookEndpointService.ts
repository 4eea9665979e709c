import { randomUUID } from 'node:crypto';
import type { ActingKey } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '@tally/schemas';
import { assertDeliverableUrl, type AddressPolicy } from './addressGuard';
import { WebhookDeliveryNotFoundError, WebhookEndpointNotFoundError, WebhookEventTypeError } from './webhookErrors';
import { newWebhookSecret } from './webhookSecret';
import type { WebhookDelivery, WebhookEndpoint, WebhookEndpointChanges, WebhookStore } from './webhookStore';

interface WebhookEndpointServiceOptions extends AddressPolicy {
  readonly store: WebhookStore;
  /** Where a new endpoint starts: it receives the ledger events after the head at its creation. */
  readonly eventStore: Pick<EventStore, 'headPosition'>;
  /** How long a rotated-out secret is still signed with. */
  readonly secretGraceMs: number;
  readonly clock: () => Date;
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
  };
}
