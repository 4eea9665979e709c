import { balanceIdOfStream, fromStoredLedgerEvent, initialBalanceState, type BalanceEvent, type BalanceState, type FoldedBalance } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import { foldStoredEvent, type BalanceStates } from '@tally/ledger';
import { isTransientError } from '@tally/runtime';
import { LEDGER_EVENT_TYPES } from '@tally/schemas';
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

const ledgerEventTypes: ReadonlySet<string> = new Set(LEDGER_EVENT_TYPES);

/** The balance just after `event`, folded onto the state before it by the ledger's fold step, each step's refusal named. */
function foldOnto(before: BalanceState, event: RecordedEvent): FoldedBalance {
  let decoded: BalanceEvent;
  try {
    decoded = fromStoredLedgerEvent(event);
  } catch (error) {
    throw new UnfoldableWebhookEventError(event, 'decoded', error);
  }
  try {
    return { state: foldStoredEvent(before, event, decoded), revision: event.revision };
  } catch (error) {
    throw new UnfoldableWebhookEventError(event, 'folded', error);
  }
}

/**
 * The balance just after `event`, as the ledger folds it: at the event's own revision, where a
 * command's stored snapshot usually is (none is folded then). Only if that fails is the state
 * before it read and the event folded here, to tell this event's refusal (named, waited out)
 * from any other (passed on as it was).
 */
async function stateAfter(
  balanceStates: Pick<BalanceStates, 'at'>,
  balanceId: string,
  event: RecordedEvent,
): Promise<FoldedBalance> {
  try {
    return await balanceStates.at(balanceId, event.revision);
  } catch (error) {
    if (isTransientError(error)) throw error;
    foldOnto(event.revision === 0n ? initialBalanceState : (await balanceStates.at(balanceId, event.revision - 1n)).state, event);
    throw error;
  }
}

/**
 * Turns a batch of the event store's events into deliveries: one per ledger event that raises
 * a webhook type and per endpoint that takes that type and was created before the event. The
 * balance in each payload is the state just after its event, folded by the ledger (at a
 * revision, from its snapshots); within a batch a balance's later events are folded onto the
 * state already at hand rather than read again. An event is decoded only for that: most raise no
 * webhook (a usage charge) and are only checked to be of a type this release knows. Recording is
 * idempotent (deterministic ids), so a batch handed over again after a crash records nothing new.
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
      // An unknown type is named here, by its type alone, since most events are never decoded:
      // decoding costs about 130 times the type check, and a usage charge raises no webhook.
      if (!ledgerEventTypes.has(event.type)) throw new UnfoldableWebhookEventError(event, 'decoded', new Error(`unknown ledger event type ${event.type}`));
      const known = states.get(balanceId);
      // Keep the batch's fold of this balance current: it may be needed by a later event.
      if (known !== undefined && known.revision + 1n === event.revision) states.set(balanceId, foldOnto(known.state, event));
      else if (known !== undefined) states.delete(balanceId);
      const type = webhookEventTypeOf(event);
      if (type === undefined) continue;
      const receivers = endpoints.filter((endpoint) => endpoint.afterPosition < event.position && endpoint.events.includes(type));
      if (receivers.length === 0) continue;
      let loaded = states.get(balanceId);
      if (loaded === undefined || loaded.revision !== event.revision) {
        loaded = await stateAfter(balanceStates, balanceId, event);
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
