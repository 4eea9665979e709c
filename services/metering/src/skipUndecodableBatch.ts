import { createKafka, kafkaConnectionConfig, offsetPlace, readBatchAt, undecodableBatchOf, type KafkaConnection } from '@tally/kafka';
import { logLevel, Partitioners, type CompressionTypes } from 'kafkajs';
import { DEAD_LETTER_HEADERS, deadLetterMessage } from './deadLetterMessage';
import { UndecodableBatchError } from './meteringErrors';

export interface SkipUndecodableBatchOptions {
  readonly kafka: KafkaConnection;
  readonly groupId: string;
  readonly topic: string;
  readonly dlqTopic: string;
  readonly partition: number;
  /** The offset the consumer reported (log, /health): the batch must start there or contain it. */
  readonly offset: string;
  readonly compression?: CompressionTypes;
  /** How long to wait for the batch to be fetched; default 30 s. */
  readonly timeoutMs?: number;
  readonly clock?: () => Date;
}

export interface SkippedBatch {
  readonly topic: string;
  readonly partition: number;
  readonly firstOffset: string;
  readonly lastOffset: string;
  readonly records: number;
  readonly codec: string;
  readonly reason: string;
  /** The offset the group now resumes from. */
  readonly committed: string;
}

/** Refused for a reason the operator can act on (consumers running, wrong offset, batch readable). */
export class SkipBatchRefusedError extends Error {
  override readonly name = 'SkipBatchRefusedError';
}

/**
 * Moves a consumer group's partition past a record batch that cannot be decoded, after sending
 * the raw batch (its header and compressed records, as stored) to the dead-letter topic, so that
 * it can be examined and, once readable, replayed. The group must have no running member: Kafka
 * accepts an offset from outside the group only then, and a running member would go on from its
 * own position anyway. It also refuses a batch that decodes (the cure then is to restart the
 * consumers, not to skip usage), an offset that is not where the group waits, and a place the
 * topic does not have.
 */
export async function skipUndecodableBatch(options: SkipUndecodableBatchOptions): Promise<SkippedBatch> {
  const { groupId, topic, partition } = options;
  const kafka = createKafka({ ...kafkaConnectionConfig(options.kafka), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    // First, with one read of the watermarks: a partition the topic does not have, or an offset
    // past its end, would otherwise wait the read's whole timeout for a batch (offsetPlace).
    const place = offsetPlace(await admin.fetchTopicOffsets(topic), partition, options.offset);
    if (place.kind === 'no_partition') {
      const { partitions } = place;
      throw new SkipBatchRefusedError(`${topic} has ${partitions} partition${partitions === 1 ? '' : 's'} (0..${partitions - 1}): there is no partition ${partition}`);
    }
    if (place.kind === 'outside') throw new SkipBatchRefusedError(`there is no offset ${options.offset} in ${topic}/${partition}: ${place.why}`);
    const {
      groups: [group],
    } = await admin.describeGroups([groupId]);
    if (group !== undefined && group.members.length > 0) {
      throw new SkipBatchRefusedError(
        `consumer group ${groupId} has ${group.members.length} running member(s) (state ${group.state}); stop the consumers (TALLY_ROLES with consumer) first`,
      );
    }
    const [committedOffsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    // Nothing committed yet (-1): the group starts at the partition's earliest offset (fromBeginning).
    const stored = committedOffsets?.partitions.find((entry) => entry.partition === partition)?.offset ?? '-1';
    const committed = stored === '-1' ? place.low.toString() : stored;
    // The batch at the offset, handed over whole as one stand-in message when it cannot be decoded.
    const [first] = await readBatchAt({ kafka, topic, partition, offset: options.offset, purpose: 'tally-skip-batch', timeoutMs: options.timeoutMs ?? 30_000 });
    const batch = first === undefined ? undefined : undecodableBatchOf(first);
    if (batch === undefined) {
      throw new SkipBatchRefusedError(`the batch at ${topic}/${partition} offset ${options.offset} decodes: restart the consumers instead of skipping usage`);
    }
    const waitsInside = BigInt(committed) >= BigInt(batch.baseOffset) && BigInt(committed) <= BigInt(batch.lastOffset);
    if (!waitsInside) {
      throw new SkipBatchRefusedError(
        `group ${groupId} is at offset ${committed} of ${topic}/${partition}, outside the undecodable batch ${batch.baseOffset}..${batch.lastOffset}`,
      );
    }

    // Bad input never disappears: the raw batch is acknowledged by every in-sync replica of the
    // dead-letter topic before the group's offset moves past it.
    // The one dead-letter format: the raw batch stands as the message (at the batch's first
    // offset), cut like any large value, with the batch's last offset besides.
    const letter = deadLetterMessage(
      {
        topic,
        partition,
        message: {
          key: null,
          value: batch.raw,
          offset: batch.baseOffset,
          timestamp: '0',
          attributes: 0,
          headers: { [DEAD_LETTER_HEADERS.sourceLastOffset]: batch.lastOffset },
        },
      },
      new UndecodableBatchError(batch.reason),
      (options.clock ?? (() => new Date()))(),
    );
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    try {
      await producer.send({ topic: options.dlqTopic, acks: -1, compression: options.compression, messages: [letter] });
    } finally {
      await producer.disconnect();
    }
    const next = (BigInt(batch.lastOffset) + 1n).toString();
    await admin.setOffsets({ groupId, topic, partitions: [{ partition, offset: next }] });
    return {
      topic,
      partition,
      firstOffset: batch.baseOffset,
      lastOffset: batch.lastOffset,
      records: batch.records,
      codec: batch.codec,
      reason: batch.reason,
      committed: next,
    };
  } finally {
    await admin.disconnect();
  }
}
