import { ConfigResourceTypes, type Kafka, type Message, type RetryOptions } from 'kafkajs';
import type { Logger } from 'pino';

/**
 * Kafka's default max.message.bytes, the limit assumed when the topic's own cannot be read (the
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

/** What one send to a topic may hold: learned from the topic once, lowered when it refuses a part. */
export interface SendBudget {
  current(): Promise<number>;
  /** The topic refused a part of `bytes` as too large: later parts hold at most half of it (never more than before). */
  refused(bytes: number): number;
}

/**
 * The budget of sends to `topic`, from its effective max.message.bytes (its own, or the
 * broker's default), read once with describeConfigs. Unreadable (an ACL without
 * DescribeConfigs), Kafka's default stands in: a part the topic refuses is halved anyway.
 */
export function topicSendBudget(options: { readonly kafka: Kafka; readonly topic: string; readonly logger: Logger; readonly retry?: RetryOptions }): SendBudget {
  const { kafka, topic, logger } = options;
  let budget: number | undefined;
  let learning: Promise<number> | undefined;

  async function learn(): Promise<number> {
    const admin = kafka.admin({ retry: options.retry });
    try {
      await admin.connect();
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] }],
      });
      const value = Number(resources[0]?.configEntries.find((entry) => entry.configName === 'max.message.bytes')?.configValue);
      if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`the topic's max.message.bytes reads ${String(value)}`);
      logger.debug({ maxMessageBytes: value }, "learned the topic's max.message.bytes");
      return sendBudgetOf(value);
    } catch (error) {
      logger.warn({ err: error, maxMessageBytes: FALLBACK_MAX_MESSAGE_BYTES }, "could not read the topic's max.message.bytes; assuming Kafka's default");
      return sendBudgetOf(FALLBACK_MAX_MESSAGE_BYTES);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  return {
    async current() {
      if (budget !== undefined) return budget;
      learning ??= learn();
      const learned = await learning;
      // A refusal while learning already lowered it: the lower of the two stands.
      budget = Math.min(budget ?? learned, learned);
      return budget;
    },
    refused(bytes) {
      // Only ever lowered: concurrent sends share the budget, and a part built under an older,
      // larger one may be refused after a smaller part was; half of it would raise the budget back.
      budget = Math.max(1, Math.min(budget ?? Number.MAX_SAFE_INTEGER, Math.floor(bytes / 2)));
      return budget;
    },
  };
}

export interface SendInPartsOptions {
  readonly messages: readonly Message[];
  readonly budget: SendBudget;
  /** Sends one part and resolves once the broker acknowledged it. */
  readonly send: (part: Message[]) => Promise<void>;
  /**
   * The topic refused the message at `index` alone as too large, which no retry changes: throw
   * to end the send there, or return to leave it out and send the rest.
   */
  readonly refusedAlone: (index: number, error: unknown) => void;
  readonly logger: Logger;
}

/**
 * Sends messages in order, in parts the topic takes: kafkajs sends one call as one record batch
 * per partition, which the broker refuses whole over max.message.bytes. Each part waits for its
 * acknowledgement before the next goes, so a key's messages stay in order and a failure leaves
 * exactly the parts before it acknowledged. A refused part is halved; a message refused alone
 * goes to `refusedAlone`. Any other failure rejects as it came.
 */
export async function sendInParts(options: SendInPartsOptions): Promise<void> {
  const { messages, budget } = options;
  const sizes = messages.map(recordBytesOf);
  let from = 0;
  while (from < messages.length) {
    const end = partEnd(sizes, from, await budget.current());
    try {
      await options.send(messages.slice(from, end));
    } catch (error) {
      if (!isTooLargeForTopic(error)) throw error;
      if (end - from === 1) {
        options.refusedAlone(from, error);
        from = end;
        continue;
      }
      const bytes = sizes.slice(from, end).reduce((sum, size) => sum + size, 0);
      const lowered = budget.refused(bytes);
      options.logger.warn({ messages: end - from, bytes, sendBudget: lowered }, 'the topic refused a part as too large; sending smaller parts');
      continue;
    }
    from = end;
  }
}
