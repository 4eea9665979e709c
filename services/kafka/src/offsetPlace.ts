/** A partition's watermarks, as fetchTopicOffsets answers them for each partition of a topic. */
export interface PartitionWatermarks {
  readonly partition: number;
  readonly low: string;
  readonly high: string;
}

/** Where an offset stands in a topic's partition, from the topic's watermarks. */
export type OffsetPlace =
  /** A record can be there: low <= offset < high. */
  | { readonly kind: 'within'; readonly low: bigint; readonly high: bigint }
  /** The topic has no such partition; it has `partitions` (0..partitions-1). */
  | { readonly kind: 'no_partition'; readonly partitions: number }
  /** Past the partition's end, or before its start (deleted by retention): `why`, for an operator. */
  | { readonly kind: 'outside'; readonly why: string };

/**
 * The one check of a place before reading it (readBatchAt): a read of a partition the topic does
 * not have, or of an offset at or past the partition's end, waits for a write until its timeout,
 * and one before its start reads from elsewhere. Refused here at once, with the reason.
 */
export function offsetPlace(watermarks: readonly PartitionWatermarks[], partition: number, offset: string): OffsetPlace {
  const found = watermarks.find((entry) => entry.partition === partition);
  if (found === undefined) return { kind: 'no_partition', partitions: watermarks.length };
  const [at, low, high] = [BigInt(offset), BigInt(found.low), BigInt(found.high)];
  if (at >= high) return { kind: 'outside', why: `the partition ends before it (next offset ${high})` };
  if (at < low) return { kind: 'outside', why: `the partition's retention has deleted it (earliest offset ${low})` };
  return { kind: 'within', low, high };
}
