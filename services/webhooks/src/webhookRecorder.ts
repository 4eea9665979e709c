import { balanceIdOfStream, ValidationError, type FoldedBalance } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import { foldRecorded, type BalanceStates } from '@tally/ledger';
import { UnfoldableWebhookEventError } from './webhookErrors';
import { webhookEventTypeOf, webhookPayload } from './webhookEvents';
import { webhookMessageId } from './webhookMessageId';
import type { NewWebhookDelivery, WebhookStore } from './webhookStore';

interface WebhookRecorderOptions {
  readonly store: Pick<WebhookStore, 'allEndpoints' | 'recordDeliveries'>;
  /** The ledger's balance states: the one fold, with its snapshots. */
  readonly balanceStates: Pick<BalanceStates, 'at'>;
  readonly clock: () => Date;
}

/**
 * Turns a batch of the event store's events into deliveries: one per ledger event that raises
 * a webhook type and per endpoint that takes that type and was created before the event. The
 * balance in each payload is the state just after its event, folded by the ledger (at a
 * revision, from its snapshots); within a batch a balance's later events are folded onto the
 * state already at hand rather than read again. Recording is idempotent (deterministic ids),
 * so a batch handed over again after a crash records nothing new.
 */
export function createWebhookRecorder(options: WebhookRecorderOptions): (events: readonly RecordedEvent[]) => Promise<number> {
  const { store, balanceStates, clock } = options;
  return async (events) => {
    const endpoints = await store.allEndpoints();
    if (endpoints.length === 0) return 0;
    const states = new Map<string, FoldedBalance>();
    const deliveries: NewWebhookDelivery[] = [];
    const recordOne = async (event: RecordedEvent, balanceId: string): Promise<void> => {
      const known = states.get(balanceId);
      // Keep the batch's fold of this balance current: it may be needed by a later event.
      if (known !== undefined && known.revision + 1n === event.revision) states.set(balanceId, foldRecorded([event], known));
      else if (known !== undefined) states.delete(balanceId);
      const type = webhookEventTypeOf(event);
      if (type === undefined) return;
      const receivers = endpoints.filter((endpoint) => endpoint.afterPosition < event.position && endpoint.events.includes(type));
      if (receivers.length === 0) return;
      let loaded = states.get(balanceId);
      if (loaded === undefined || loaded.revision !== event.revision) {
        loaded = await balanceStates.at(balanceId, event.revision);
        states.set(balanceId, loaded);
      }
      if (loaded.state.status !== 'open') return;
      const body = JSON.stringify(webhookPayload(type, event, loaded.state));
      for (const endpoint of receivers) {
        deliveries.push({
          id: webhookMessageId(endpoint.id, event.id),
          endpointId: endpoint.id,
          ledgerEventId: event.id,
          balanceId,
          position: event.position,
          eventType: type,
          body,
        });
      }
    };
    for (const event of events) {
      const balanceId = balanceIdOfStream(event.streamId);
      if (balanceId === undefined) continue;
      try {
        await recordOne(event, balanceId);
      } catch (error) {
        // The fold refuses the event's payload: named, for the processor to wait it out.
        if (error instanceof ValidationError) throw new UnfoldableWebhookEventError(event, error);
        throw error;
      }
    }
    await store.recordDeliveries(deliveries, clock());
    return deliveries.length;
  };
}
