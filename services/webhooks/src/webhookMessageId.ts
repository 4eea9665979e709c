import { deterministicId, joinIdParts } from '@tally/ledger';

/**
 * The webhook-id of a ledger event's message to an endpoint: derived from the two, never
 * random, so every attempt, a delivery recorded again after a crash (before the checkpoint
 * moved) and one recorded by the process that took over all carry the same id, and a receiver
 * that deduplicates by webhook-id (as Standard Webhooks asks) acts on the event once.
 */
export function webhookMessageId(endpointId: string, ledgerEventId: string): string {
  return `msg_${deterministicId(joinIdParts(['webhook', endpointId, ledgerEventId]))}`;
}
