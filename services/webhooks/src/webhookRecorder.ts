import { balanceIdOfStream, evolve, fromStoredLedgerEvent, initialBalanceState, type BalanceEvent, type BalanceState, type FoldedBalance } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import type { BalanceStates } from '@tally/ledger';
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
 * balance in each payload is the state just after its event: the state before it from the ledger
 * (at a revision, from its snapshots) with the event folded onto it; within a batch a balance's
 * later events are folded onto the state already at hand rather than read again. Recording is idempotent (deterministic ids),
 * so a batch handed over again after a crash records nothing new.
 */
export function createWebhookRecorder(options: WebhookRecorderOptions): (events: readonly RecordedEvent[]) => Promise<number> {
  const { store, balanceStates, clock } = options;
  return async (events) => {
    const endpoints = await store.allEndpoints();
    if (endpoints.length === 0) return 0;
    const states = new Map<string, FoldedBalance>();
    const deliveries: NewWebhookDelivery[] = [];
    for (const event of events) {
      const balanceId = balanceIdOfStream(event.streamId);
      if (balanceId === undefined) continue;
      // Decoding and folding this event are what a newer release's event fails (an unknown type,
      // an amount this release refuses): named, for the processor to wait it out. Nothing else
      // is wrapped: a refusal from reading a state or building a payload fails the deliverer.
      let decoded: BalanceEvent;
      try {
        decoded = fromStoredLedgerEvent(event);
      } catch (error) {
        throw new UnfoldableWebhookEventError(event, 'decoded', error);
      }
      const fold = (before: BalanceState): FoldedBalance => {
        try {
          return { state: evolve(before, decoded), revision: event.revision };
        } catch (error) {
          throw new UnfoldableWebhookEventError(event, 'folded', error);
        }
      };
      const known = states.get(balanceId);
      // Keep the batch's fold of this balance current: it may be needed by a later event.
      if (known !== undefined && known.revision + 1n === event.revision) states.set(balanceId, fold(known.state));
      else if (known !== undefined) states.delete(balanceId);
      const type = webhookEventTypeOf(event);
      if (type === undefined) continue;
      const receivers = endpoints.filter((endpoint) => endpoint.afterPosition < event.position && endpoint.events.includes(type));
      if (receivers.length === 0) continue;
      let loaded = states.get(balanceId);
      if (loaded === undefined || loaded.revision !== event.revision) {
        // The state before it, from the ledger, and this event folded here, so that only this
        // event's decoding and folding are named as unfoldable.
        loaded = fold(event.revision === 0n ? initialBalanceState : (await balanceStates.at(balanceId, event.revision - 1n)).state);
        states.set(balanceId, loaded);
      }
      if (loaded.state.status !== 'open') continue;
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
    }
    await store.recordDeliveries(deliveries, clock());
    return deliveries.length;
  };
}
