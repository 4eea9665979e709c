import { createKafka, kafkaConnectionConfig, readTopicToEnds, sendInParts, topicSendBudget, type KafkaConnection } from '@tally/kafka';
import { logLevel, Partitioners, type CompressionTypes, type IHeaders, type KafkaMessage, type Message } from 'kafkajs';
import pino, { type Logger } from 'pino';
import { DEAD_LETTER_HEADERS, deadLetterHeader as header } from './deadLetterMessage';
import { isDeadLetterPlace, MAX_PICKED_DEAD_LETTERS } from './deadLetterPlace';

/** On a republished message: where in the dead-letter topic it came from, `<partition>:<offset>`. */
export const REDRIVEN_FROM_HEADER = 'tally.redrive.from';

/** Why a dead letter was left where it is. */
export type RedriveSkipReason =
  /** Its error code, time or place is not among those asked for. */
  | 'not_selected'
  /** A raw record batch (`tally skip-batch`), not one message: nothing to send as it is. */
  | 'raw_batch'
  /** Its value, key or headers were cut to fit the topic: the whole original is in the source topic only. */
  | 'cut'
  /** It carries no source topic, or another than the usage topic: not a letter of this consumer. */
  | 'other_source'
  /**
   * The usage topic refused it alone as larger than it takes (its max.message.bytes): kept, and
   * named in `tooLarge`, to send back by its place once that is raised. Never in a dry run, which sends nothing.
   */
  | 'too_large';

export interface RedriveDeadLettersOptions {
  readonly kafka: KafkaConnection;
  readonly dlqTopic: string;
  /** The usage topic: letters are sent back there, and only letters that came from it. */
  readonly usageTopic: string;
  /** The error codes to send back (`tally.dlq.error-code`), or every code. */
  readonly errorCodes: readonly string[] | 'all';
  /** Only these letters, each `<partition>:<offset>` on the dead-letter topic (an operator's pick of one or a few). */
  readonly letters?: readonly string[];
  /** Only letters dead-lettered at or after this time (`tally.dlq.at`). */
  readonly since?: Date;
  /** Read and count, send nothing. */
  readonly dryRun?: boolean;
  readonly compression?: CompressionTypes;
  /** How long the read may go without reaching the next letter before it fails; default 30 s. */
  readonly idleTimeoutMs?: number;
  /** Ends the run early (a process stopping): what was sent stays sent, and the run rejects. */
  readonly signal?: AbortSignal;
  /** Told the counts so far after each batch is handled (sent, in a run that sends). */
  readonly onProgress?: (soFar: RedriveResult) => Promise<void> | void;
  /** Told the dead-letter offsets of letters once the usage topic has them (each part of a batch; not in a dry run). */
  readonly onSent?: (partition: number, offsets: readonly string[]) => Promise<void> | void;
  /** Where a part the usage topic refused as too large, and a letter left as too large, is said; default: nowhere. */
  readonly logger?: Logger;
}

export interface RedriveResult {
  /** Letters read: every letter in the topic when the run started. */
  readonly read: number;
  /** Letters sent back to the usage topic (or, in a dry run, that would have been). */
  readonly republished: number;
  /** Of those, by error code. */
  readonly republishedByErrorCode: Readonly<Record<string, number>>;
  readonly skipped: Readonly<Record<RedriveSkipReason, number>>;
  /**
   * Picked places where the topic has no letter (past its partition's end or retention, or a
   * partition it does not have), in the order picked; empty when every pick was met or none was made.
   */
  readonly notFound: readonly string[];
  /**
   * The letters `skipped.too_large` counts, each `<partition>:<offset>`, in the order met: the
   * first MAX_PICKED_DEAD_LETTERS of them, as many as one run may pick to send back.
   */
  readonly tooLarge: readonly string[];
}

/** Headers Tally added to a letter (and to an earlier redrive), left off when it is sent back. */
const ADDED_HEADERS = new Set<string>([...Object.values(DEAD_LETTER_HEADERS), REDRIVEN_FROM_HEADER]);
const CUT_HEADERS = [DEAD_LETTER_HEADERS.valueTruncatedFrom, DEAD_LETTER_HEADERS.keyTruncatedFrom, DEAD_LETTER_HEADERS.headersTruncatedFrom];

/**
 * What to do with one letter: the message to send back (the original key, value and headers, as
 * the producer sent them, with where it was in the dead-letter topic), or why it stays.
 */
export function redriveDecision(
  letter: Pick<KafkaMessage, 'key' | 'value' | 'headers' | 'offset'>,
  partition: number,
  options: Pick<RedriveDeadLettersOptions, 'usageTopic' | 'errorCodes' | 'since' | 'letters'>,
): { readonly send: Message; readonly errorCode: string } | { readonly skip: RedriveSkipReason } {
  const { headers } = letter;
  // First: a letter not picked is not selected, whatever else it is.
  if (options.letters !== undefined && !options.letters.includes(`${partition}:${letter.offset}`)) return { skip: 'not_selected' };
  if (header(headers, DEAD_LETTER_HEADERS.sourceTopic) !== options.usageTopic) return { skip: 'other_source' };
  const errorCode = header(headers, DEAD_LETTER_HEADERS.errorCode) ?? '';
  if (options.errorCodes !== 'all' && !options.errorCodes.includes(errorCode)) return { skip: 'not_selected' };
  if (options.since !== undefined) {
    const at = Date.parse(header(headers, DEAD_LETTER_HEADERS.at) ?? '');
    if (!(at >= options.since.getTime())) return { skip: 'not_selected' };
  }
  if (header(headers, DEAD_LETTER_HEADERS.sourceLastOffset) !== null) return { skip: 'raw_batch' };
  if (CUT_HEADERS.some((name) => header(headers, name) !== null)) return { skip: 'cut' };
  // fromEntries defines own properties: a header named "__proto__" (the producer's name) is sent
  // back as a header, where assigning it would set the object's prototype and lose it.
  const original: IHeaders = Object.fromEntries(Object.entries(headers ?? {}).filter(([name, value]) => !ADDED_HEADERS.has(name) && value !== undefined));
  original[REDRIVEN_FROM_HEADER] = `${partition}:${letter.offset}`;
  return { send: { key: letter.key, value: letter.value, headers: original }, errorCode };
}

/**
 * The offsets each partition's picked letters span: a send-back of picked letters reads only
 * between them, not the whole dead-letter topic. A place that is not one spans nothing.
 */
export function pickedSpans(letters: readonly string[]): Map<number, { from: bigint; to: bigint }> {
  const spans = new Map<number, { from: bigint; to: bigint }>();
  for (const place of letters) {
    if (!isDeadLetterPlace(place)) continue;
    const [partitionText, offsetText] = place.split(':') as [string, string];
    const [partition, offset] = [Number(partitionText), BigInt(offsetText)];
    const span = spans.get(partition);
    spans.set(partition, span === undefined ? { from: offset, to: offset } : { from: offset < span.from ? offset : span.from, to: offset > span.to ? offset : span.to });
  }
  return spans;
}

/**
 * Sends dead letters back to the usage topic, once what made them fail is fixed (a balance opened,
 * a schema restored, a release deployed). It reads the dead-letter topic from its start (picked
 * letters: from the first picked in each partition) up to the ends it had when the run started
 * (picked letters: the last picked), so a letter that fails again, dead-lettered anew meanwhile, is
 * not read again in the same run; it moves no offsets and leaves the letters where they are.
 *
 * Sending a letter back twice, or one whose usage its producer has since sent again, charges
 * nothing twice: each ledger event's id derives from the usage event's id and the balance, and the
 * append refuses an id it holds (the README's "Guarantees").
 */
export async function redriveDeadLetters(options: RedriveDeadLettersOptions): Promise<RedriveResult> {
  const kafka = createKafka({ ...kafkaConnectionConfig(options.kafka), logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  const logger = options.logger ?? pino({ level: 'silent' });
  // A fetched batch can be more than the usage topic takes in one message: sent in parts it takes.
  const sendBudget = topicSendBudget({ kafka, topic: options.usageTopic, logger });
  if (!options.dryRun) await producer.connect();
  const counts = { read: 0, republished: 0 };
  // Keyed by the letters' error codes, which a letter written by hand may make anything: no
  // prototype, so `constructor` counts from 0 and `__proto__` is a code like any other.
  const republishedByErrorCode: Record<string, number> = Object.create(null) as Record<string, number>;
  const skipped: Record<RedriveSkipReason, number> = { not_selected: 0, raw_batch: 0, cut: 0, other_source: 0, too_large: 0 };
  const tooLarge: string[] = [];
  // The picked places not met yet: a pick the topic has no letter at must not pass for sent back.
  const unmet = new Set(options.letters ?? []);
  let finished = false;
  // Copies: what a progress listener keeps does not change under it. Only a read to the end knows
  // which picks are not there.
  const resultOf = (): RedriveResult => ({ ...counts, republishedByErrorCode: { ...republishedByErrorCode }, skipped: { ...skipped }, notFound: finished ? [...unmet] : [], tooLarge: [...tooLarge] });
  try {
    // Up to the ends the topic has now: a letter that fails again is dead-lettered behind them.
    await readTopicToEnds({
      kafka,
      topic: options.dlqTopic,
      purpose: 'tally-redrive',
      ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      ...(options.letters !== undefined ? { only: pickedSpans(options.letters) } : {}),
      eachBatch: async (partition, letters) => {
        const toSend: Message[] = [];
        const codes: string[] = [];
        const offsets: string[] = [];
        for (const letter of letters) {
          unmet.delete(`${partition}:${letter.offset}`);
          const decision = redriveDecision(letter, partition, options);
          if ('skip' in decision) {
            skipped[decision.skip] += 1;
            continue;
          }
          toSend.push(decision.send);
          codes.push(decision.errorCode);
          offsets.push(letter.offset);
        }
        // Counted once the broker has them: a failed send fails the run, and running it again
        // sends nothing the ledger would charge twice. In parts, in order, each acknowledged
        // before the next (sendInParts), so a part's letters are marked once the topic has them.
        const refused = new Set<number>();
        if (toSend.length > 0 && !options.dryRun) {
          // The index in toSend of the next part's first letter: parts go in order, and a letter
          // refused alone is a part of its own.
          let next = 0;
          await sendInParts({
            messages: toSend,
            budget: sendBudget,
            send: async (part) => {
              await producer.send({ topic: options.usageTopic, acks: -1, compression: options.compression, messages: part });
              await options.onSent?.(partition, offsets.slice(next, next + part.length));
              next += part.length;
            },
            // Alone too large, which no retry changes: left in the dead-letter topic (a run moves
            // nothing there) and named, while the rest go back. Not marked sent back, so picked by
            // its place once max.message.bytes is raised it goes back alone.
            refusedAlone: (index, error) => {
              refused.add(index);
              next = index + 1;
              const place = `${partition}:${offsets[index]}`;
              if (tooLarge.length < MAX_PICKED_DEAD_LETTERS) tooLarge.push(place);
              logger.warn({ err: error, letter: place, bytes: toSend[index]!.value?.length ?? 0 }, 'dead letter larger than the usage topic takes; left where it is');
            },
            logger,
          });
        }
        counts.read += letters.length;
        counts.republished += toSend.length - refused.size;
        skipped.too_large += refused.size;
        codes.forEach((code, index) => {
          if (!refused.has(index)) republishedByErrorCode[code] = (republishedByErrorCode[code] ?? 0) + 1;
        });
        await options.onProgress?.(resultOf());
      },
    });
    finished = true;
  } finally {
    if (!options.dryRun) await producer.disconnect();
  }
  return resultOf();
}
