import type { Message } from 'kafkajs';

/**
 * Kafka's default max.message.bytes, the relay's limit when the topic's own cannot be read (the
 * admin client refused by an ACL): a topic set lower still works, as a refused part is halved.
 */
export const FALLBACK_MAX_MESSAGE_BYTES = 1_048_588;

// A record batch's header (v2), and the most a record adds to its key, value and headers
// (length, attributes, timestamp and offset deltas, lengths as varints).
const BATCH_OVERHEAD_BYTES = 61;
const RECORD_OVERHEAD_BYTES = 40;
const HEADER_OVERHEAD_BYTES = 10;

/**
 * What one send may hold, from the topic's max.message.bytes: a tenth below it, since the
 * estimate of a record is an upper bound only for the uncompressed batch kafkajs builds.
 */
export function sendBudgetOf(maxMessageBytes: number): number {
  return Math.max(1, Math.floor(maxMessageBytes * 0.9) - BATCH_OVERHEAD_BYTES);
}

/** An upper bound of the bytes a message takes in an uncompressed record batch. */
export function recordBytesOf(message: Message): number {
  let bytes = RECORD_OVERHEAD_BYTES + byteLength(message.key) + byteLength(message.value);
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    bytes += HEADER_OVERHEAD_BYTES + Buffer.byteLength(name) + (Array.isArray(value) ? value.reduce((sum: number, v) => sum + byteLength(v), 0) : byteLength(value));
  }
  return bytes;
}

function byteLength(value: Buffer | string | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'string' ? Buffer.byteLength(value) : value.length;
}

/**
 * Where the part that starts at `from` ends (exclusive): as many messages, in order, as fit in
 * `budget` bytes, and always at least one (a record over the budget goes alone; the topic
 * decides). The whole batch is one part, and so one send, when it fits.
 */
export function partEnd(sizes: readonly number[], from: number, budget: number): number {
  let end = from + 1;
  let bytes = sizes[from] ?? 0;
  while (end < sizes.length && bytes + sizes[end]! <= budget) {
    bytes += sizes[end]!;
    end += 1;
  }
  return end;
}

/** Whether the broker refused a send as too large (a record, or the batch, over max.message.bytes). */
export function isTooLargeForTopic(error: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  while (pending.length > 0) {
    const current = pending.pop();
    if (current === null || typeof current !== 'object' || seen.has(current)) continue;
    seen.add(current);
    const { type, cause, errors } = current as { type?: unknown; cause?: unknown; errors?: unknown };
    if (type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE') return true;
    pending.push(cause);
    if (Array.isArray(errors)) pending.push(...errors);
  }
  return false;
}
