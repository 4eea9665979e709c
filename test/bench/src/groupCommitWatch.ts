import { setTimeout as delay } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import { formatCount, progress } from './progress';

export interface CommitWatchOptions {
  readonly admin: Admin;
  readonly groupId: string;
  readonly topic: string;
  /** A consumer that dies is not waited for until the deadline: its exit fails the wait at once. */
  readonly failed?: () => string | undefined;
  readonly timeoutMs: number;
  readonly intervalMs?: number;
}

/**
 * Polls the group's committed offsets until every partition's reaches the topic's end, and
 * returns the wall-clock time (epoch ms) of the poll that saw it. A commit is made only after the
 * batch's appends are durable, so this is when the last usage event was metered for good. The
 * time is late by at most one interval plus one round trip.
 */
export async function waitForGroupAtEnd(options: CommitWatchOptions): Promise<number> {
  const { admin, groupId, topic, timeoutMs } = options;
  const intervalMs = options.intervalMs ?? 200;
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map((entry) => [entry.partition, BigInt(entry.high)]));
  const total = [...ends.values()].reduce((sum, end) => sum + end, 0n);
  const deadline = Date.now() + timeoutMs;
  let lastReport = Date.now();
  for (;;) {
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const seenAt = Date.now();
    let done = 0n;
    for (const { partition, offset } of committed?.partitions ?? []) {
      // -1: nothing committed yet on that partition.
      if (offset !== '-1') done += BigInt(offset) < (ends.get(partition) ?? 0n) ? BigInt(offset) : (ends.get(partition) ?? 0n);
    }
    if (done === total) return seenAt;
    const failure = options.failed?.();
    if (failure !== undefined) throw new Error(`${groupId} stopped before the end of ${topic}: ${failure}`);
    if (seenAt > deadline) throw new Error(`${groupId} committed ${done} of ${total} offsets of ${topic} within ${timeoutMs} ms`);
    if (seenAt - lastReport >= 10_000) {
      lastReport = seenAt;
      progress(`${groupId}: ${formatCount(Number(done))} of ${formatCount(Number(total))} committed`);
    }
    await delay(intervalMs);
  }
}
